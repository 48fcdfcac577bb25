"""Argument parsing and work for ``python -m lineprof FILE...``.

Errors a user can fix print one line, ``lineprof: <message>``, on stderr
and exit 1; usage errors print one line, ``lineprof: error: <message>``,
and exit 2, as argparse does (but without the usage line); never a
traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any, NoReturn, Optional, Sequence

from ._version import __version__
from .errors import LineprofError
from .report import DEFAULT_SLOW, DEFAULT_TOP, require_rich, show_text
from .stats import load_stats, merge_stats

__all__ = ["add_switch", "boolean", "build_parser", "main", "milliseconds", "positive_float",
           "positive_int", "resolve_switch"]

PROG = "lineprof"
DEFAULT_UNIT = 1e-6


def positive_float(text: str) -> float:
    """Return ``text`` as a positive finite float; raise ArgumentTypeError otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """Return ``text`` as an integer of at least 1; raise ArgumentTypeError otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def milliseconds(text: str) -> float:
    """Return ``text`` milliseconds as seconds, a finite number >= 0; raise ArgumentTypeError otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(
            f"must be a number of milliseconds, 0 or more, got {text!r}")
    return value / 1000.0


_TRUE = {"1", "on", "true", "t", "yes", "y"}
_FALSE = {"", "0", "off", "false", "f", "no", "n"}


def boolean(text: str) -> bool:
    """Return ``text`` read as on or off (case does not matter); raise ValueError otherwise."""
    key = text.strip().casefold()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise ValueError(f"expected yes/no, true/false, on/off or 1/0, got {text!r}")


def resolve_switch(tok: str, switches: Sequence[str]) -> str:
    """Return ``--NAME=VALUE`` of an on/off option in ``switches`` as ``--NAME`` or ``--no-NAME``.

    Other words are returned as they are.  Raises ValueError ("argument
    --NAME: ...") for a value that is not on or off.
    """
    if not tok.startswith("--") or "=" not in tok:
        return tok
    name, _, value = tok[2:].partition("=")
    negated = name.startswith("no-") and name[3:] in switches
    if not (name in switches or negated):
        return tok
    base = name[3:] if negated else name
    try:
        on = boolean(value) != negated
    except ValueError as exc:
        raise ValueError(f"argument --{name}: {exc}") from None
    return f"--{base}" if on else f"--no-{base}"


def add_switch(group: Any, *names: str, help: str) -> None:
    """Add an on/off option: its names set True, ``--no-<long name>`` sets False; default None."""
    long = next(n for n in names if n.startswith("--"))
    dest = long[2:].replace("-", "_")
    group.add_argument(*names, action="store_const", const=True, default=None, dest=dest,
                       help=help + f" (--no-{long[2:]}, or {long}=no, turns it off)")
    group.add_argument(f"--no-{long[2:]}", action="store_const", const=False, dest=dest,
                       help=argparse.SUPPRESS)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for ``python -m lineprof``."""
    parser = _Parser(
        prog=PROG,
        description="Show line profiling results (.lprof files written by "
                    "kernprof -l, LINEPROF=1 or LineProfiler.dump_stats). "
                    "Several files are summed. `python -m lineprof top ADDR` "
                    "watches a program running under kernprof -l --live ADDR.")
    parser.add_argument("-V", "--version", action="version", version=__version__,
                        help="print lineprof's version and exit")
    conf = parser.add_mutually_exclusive_group()
    conf.add_argument("-c", "--config", metavar="FILE",
                      help="read the [tool.lineprof.cli] (or [tool.line_profiler.cli]) table "
                           "of this TOML file instead of looking for one (docs/config.md)")
    conf.add_argument("--no-config", action="store_true",
                      help="read no configuration file: the defaults and these options only")
    parser.add_argument("-u", "--unit", type=positive_float, default=None,
                        help=f"output unit in seconds for times (default: {DEFAULT_UNIT:g})")
    add_switch(parser, "-z", "--skip-zero", help="hide functions that were never called")
    add_switch(parser, "-t", "-s", "--sort", help="order functions by ascending total time")
    add_switch(parser, "-m", "--summarize",
               help="end with one line of total time per function")
    add_switch(parser, "-r", "--rich",
               help="syntax-highlighted output (needs the 'rich' package)")
    parser.add_argument("--max", action="store_true", dest="show_max",
                        help="add the Max column (longest single stretch) for plain functions too")
    parser.add_argument("--tasks", action="store_true",
                        help="add the Tasks section: the asyncio tasks with the most "
                             "wall, active and await time")
    parser.add_argument("--top", type=positive_int, default=DEFAULT_TOP, metavar="N",
                        help=f"rows in each table of the Tasks section (default: {DEFAULT_TOP})")
    slow = parser.add_mutually_exclusive_group()
    slow.add_argument("--slow", type=milliseconds, default=DEFAULT_SLOW, metavar="MS",
                      help="list the lines whose longest single stretch (Max) exceeded MS "
                           "milliseconds, i.e. that blocked an event loop that long "
                           f"(default: {DEFAULT_SLOW * 1000:g}, asyncio's slow-callback "
                           "threshold; 0 lists every line)")
    slow.add_argument("--no-slow", action="store_const", const=None, dest="slow",
                      help="do not list slow lines")
    parser.add_argument("--json", action="store_true",
                        help="print the merged profile as JSON (format version 1) instead")
    parser.add_argument("files", nargs="+", metavar="FILE", help=".lprof file(s) to show")
    return parser


#: The viewer's on/off options, as line_profiler's viewer has them.
SWITCHES = ("skip-zero", "sort", "summarize", "rich")


def _apply_config(args: argparse.Namespace) -> None:
    """Fill in the options left out from the configuration file's ``cli`` table; returns None.

    Raises LineprofError for a file that cannot be used (lineprof.config).
    """
    from . import config

    conf = config.load("cli", args.config, enabled=not args.no_config)
    for key, value in conf.values.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if conf.warning():
        print(f"{PROG}: warning: {conf.warning()}", file=sys.stderr)


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m lineprof`` with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Usage errors raise SystemExit(2) after one line on stderr.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["top"]:  # a file named "top" reads as ./top
        from .top import main as top_main

        return top_main(argv[1:])
    parser = build_parser()
    try:
        argv = [resolve_switch(a, SWITCHES) for a in argv]
    except ValueError as exc:
        parser.error(str(exc))
    args = parser.parse_args(argv)
    try:
        _apply_config(args)
    except LineprofError as exc:
        _error(str(exc))
        return 1
    if args.rich and not args.json:
        try:
            require_rich()
        except LineprofError as exc:
            _error(str(exc))
            return 2
    try:
        loaded = [load_stats(path) for path in args.files]
        stats = merge_stats(loaded)
        if len(loaded) == 1:
            stats.now = loaded[0].now  # a snapshot's running lines
        if args.json:
            sys.stdout.write(stats.to_json(indent=2) + "\n")
        else:
            show_text(stats, output_unit=args.unit, stripzeros=args.skip_zero,
                      summarize=args.summarize, sort=args.sort, rich=args.rich,
                      show_max=args.show_max, tasks=args.tasks, top=args.top,
                      slow=args.slow)
        sys.stdout.flush()
    except LineprofError as exc:
        _error(str(exc))
        return 1
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        _silence_stdout()
        return 1
    return 0


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
