"""kernprof's user errors and its one-line messages on stderr."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

PROG = "kernprof"


class KernprofError(Exception):
    """A user error kernprof reports as one line, ``kernprof: error: <message>``, exit 1."""


def error(message: str) -> None:
    """Print ``kernprof: error: message`` on stderr; returns None."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


def say(stream: Any, text: str) -> None:
    """Write a line to ``stream`` and flush it; a stream that fails is ignored.  Returns None."""
    with contextlib.suppress(Exception):
        stream.write(text + "\n")
        stream.flush()
