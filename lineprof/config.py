"""Configuration files: where they are found, what they may say, and the one error a bad one gets.

The file is the first of these (docs/config.md):

1. the path given to ``--config FILE`` (``--no-config``: none at all);
2. the file named by ``$LINEPROF_RC``, else by ``$LINE_PROFILER_RC``;
3. from the current directory up to the root, in each directory the first
   of ``lineprof.toml``, ``line_profiler.toml`` and ``pyproject.toml`` that
   is a readable TOML file, as line_profiler looks for its own.

In that file ``[tool.lineprof]`` is read; a file without it is read for
line_profiler's ``[tool.line_profiler]``, whose tables and keys are the
same, so a project configured for line_profiler keeps its settings. Keys
not set keep the shipped defaults (``lineprof/rc/lineprof.toml``), which
also give each key's type. A file named explicitly (1 or 2) that cannot be
read, is not TOML, or sets a key to the wrong type is an error naming the
file and the key; a looked-up file that is not TOML is passed over, as
line_profiler does.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import LineprofError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, from PyPI (a dependency on 3.8-3.10)
    import tomli as tomllib

__all__ = ["ConfigError", "Config", "load", "defaults"]

ENV_VARS = ("LINEPROF_RC", "LINE_PROFILER_RC")
FILE_NAMES = ("lineprof.toml", "line_profiler.toml", "pyproject.toml")
NAMESPACES = ("lineprof", "line_profiler")
DEFAULTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rc", "lineprof.toml")


class ConfigError(LineprofError):
    """A configuration file that cannot be used; the message names the file (and key)."""


class Config:
    """The settings of one table (``kernprof``, ...), with where they came from.

    ``values`` maps option names (``skip_zero``: dashes become underscores)
    to their values, defaults included; ``given`` holds the names the file
    set; ``source`` is the file's path, or None for the defaults alone;
    ``ignored`` lists the keys of a ``[tool.line_profiler]`` table that
    lineprof does not implement (the caller may say so); ``where`` names the
    table for messages (``FILE: [tool.lineprof.kernprof]``, or "the
    defaults").
    """

    def __init__(self, values: Dict[str, Any], given: List[str], source: Optional[str],
                 ignored: List[str], where: str = "the defaults") -> None:
        self.values = values
        self.given = given
        self.source = source
        self.ignored = ignored
        self.where = where

    def warning(self) -> Optional[str]:
        """Return the line that names the ``ignored`` keys, or None when there are none."""
        if not self.ignored:
            return None
        return f"{self.where}: lineprof does not support {', '.join(self.ignored)} yet; ignored"


def _read(path: str) -> Dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def defaults() -> Dict[str, Dict[str, Any]]:
    """Return the shipped defaults: ``{table: {key: value}}`` of ``[tool.lineprof]``."""
    return _read(DEFAULTS_FILE)["tool"]["lineprof"]


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (true or false)"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list of strings"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _fits(default: Any, value: Any) -> bool:
    """Return whether ``value`` has the type of ``default`` (an int is a number too)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return type(value) is type(default)


#: What a number must be beyond its type, by key.
_RANGES = {
    "unit": (lambda v: v > 0 and math.isfinite(v), "a positive number of seconds"),
    "output-interval": (lambda v: v >= 0 and math.isfinite(v),
                        "0 or a positive number of seconds"),
}


def find(explicit: Optional[str] = None) -> Tuple[Optional[str], bool]:
    """Return ``(path, named)``: the configuration file to read, and whether it was named.

    ``explicit`` is ``--config``'s value.  A named file is returned whether
    or not it exists (:func:`load` reports it); a looked-up one only if it
    is a readable TOML file.  ``(None, False)`` when there is none.
    """
    if explicit:
        return os.path.abspath(explicit), True
    for var in ENV_VARS:
        if os.environ.get(var):
            return os.path.abspath(os.environ[var]), True
    folder = os.getcwd()
    while True:
        for name in FILE_NAMES:
            path = os.path.join(folder, name)
            try:
                if os.path.isfile(path):
                    _read(path)
                    return path, False
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
                continue
        parent = os.path.dirname(folder)
        if parent == folder:
            return None, False
        folder = parent


def load(table: str, explicit: Optional[str] = None, enabled: bool = True) -> Config:
    """Return the settings of ``[tool.lineprof.<table>]`` (or line_profiler's) merged over the defaults.

    ``explicit`` is ``--config FILE``; ``enabled=False`` (``--no-config``)
    gives the defaults alone.  Raises :class:`ConfigError` for a named file
    that cannot be read or is not TOML, and for any file whose tables or
    keys have the wrong type or range, or whose ``[tool.lineprof]`` has a
    key that does not exist.
    """
    base = defaults()[table]
    values = {key.replace("-", "_"): value for key, value in base.items()}
    if not enabled:
        return Config(values, [], None, [])
    path, named = find(explicit)
    if path is None:
        return Config(values, [], None, [])
    try:
        content = _read(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file: {exc}") from None
    tool = content.get("tool", {})
    if not isinstance(tool, Mapping):
        raise ConfigError(f"{path}: [tool] must be a table, not {_type_name(tool)}")
    namespace = next((ns for ns in NAMESPACES if ns in tool), None)
    if namespace is None:
        return Config(values, [], path, [])
    section = tool[namespace]
    where = f"[tool.{namespace}]"
    if not isinstance(section, Mapping):
        raise ConfigError(f"{path}: {where} must be a table, not {_type_name(section)}")
    settings = section.get(table, {})
    where = f"[tool.{namespace}.{table}]"
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{path}: {where} must be a table, not {_type_name(settings)}")
    given, ignored = [], []
    for key, value in settings.items():
        if key not in base:
            if namespace == "lineprof":
                known = ", ".join(sorted(base))
                raise ConfigError(f"{path}: {where} has no key {key!r} (known: {known})")
            ignored.append(key)  # line_profiler's, not (yet) lineprof's
            continue
        if not _fits(base[key], value):
            raise ConfigError(f"{path}: {where} {key} must be {_type_name(base[key])}, "
                              f"not {_type_name(value)} ({value!r})")
        in_range, wanted = _RANGES.get(key, (None, ""))
        if in_range is not None and not in_range(value):
            raise ConfigError(f"{path}: {where} {key} must be {wanted}, got {value!r}")
        values[key.replace("-", "_")] = value
        given.append(key.replace("-", "_"))
    return Config(values, given, path, ignored, f"{path}: {where}")
