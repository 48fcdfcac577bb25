"""kernprof's command line: its options, parsed as line_profiler 5's kernprof parses them.

``-m MODULE`` and ``-c CODE`` end the options wherever they stand, as they
do for ``python``, and ``-`` reads the script from standard input; a bare
``-i`` means one second.  Each on/off option also takes ``--no-NAME`` and
``--NAME=VALUE`` (yes/no, true/false, on/off, 1/0).  Options not given come
from the configuration file (:mod:`lineprof.config`, table ``kernprof``),
else from the shipped defaults.
"""

from __future__ import annotations

import argparse
from typing import List, NoReturn, Optional, Sequence, Tuple

from lineprof import config
from lineprof.cli import add_switch, positive_float, resolve_switch

from .errors import PROG, KernprofError

DEFAULT_UNIT = 1e-6


def _version() -> str:
    from lineprof._version import __version__

    return __version__


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


# Options taking a value, to find where `-m`/`-c` stand among the options.
_SHORT_WITH_VALUE = set("osu")
_SHORT_OPTIONAL_VALUE = set("i")
_LONG_WITH_VALUE = {"--outfile", "--setup", "--unit", "--live", "--config"}
_LONG_OPTIONAL_VALUE = {"--output-interval"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: kernprof's on/off options (long names): each has --no-NAME and --NAME=VALUE.
SWITCHES = ("line-by-line", "builtin", "rich", "skip-zero", "summarize", "live-allow-remote")


def _switch(tok: str) -> str:
    try:
        return resolve_switch(tok, SWITCHES)
    except ValueError as exc:
        raise KernprofError(str(exc)) from None


def _bare_interval(argv: Sequence[str]) -> List[str]:
    """Return ``argv`` with a bare ``-i`` spelled ``--output-interval=1`` and ``--NAME=VALUE`` switches resolved.

    argparse would otherwise take the script's name as the interval.
    Raises KernprofError for a switch whose value is not on or off.
    """
    out = list(argv)
    i = 0
    while i < len(out):
        tok = out[i]
        if tok == "--" or tok == "-" or not tok.startswith("-"):
            break
        if tok.startswith("--") and "=" in tok:
            out[i] = tok = _switch(tok)
        nxt_is_value = i + 1 < len(out) and _is_number(out[i + 1])
        if tok in ("-i", "--output-interval") and not nxt_is_value:
            out[i] = "--output-interval=1"
        elif (not tok.startswith("--") and len(tok) > 2 and tok.endswith("i")
              and not (set(tok[1:-1]) & (_SHORT_WITH_VALUE | set("mc")))
              and not nxt_is_value):
            out[i:i + 1] = [tok[:-1], "--output-interval=1"]
            i += 1
        elif tok in _LONG_WITH_VALUE or (not tok.startswith("--") and tok[-1:] in _SHORT_WITH_VALUE):
            i += 1  # its value
        elif not tok.startswith("--") and set(tok[1:]) & set("mc"):
            break
        i += 1
    return out


def split_special(argv: Sequence[str]) -> Optional[Tuple[List[str], str, str, List[str]]]:
    """Find ``-m MODULE`` or ``-c CODE`` among the options, before any script name.

    Returns ``(options, "m" or "c", value, args)``, or None when a script
    name (or ``--``) comes first.  Raises KernprofError if the flag has no
    value.
    """
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--" or tok == "-" or not tok.startswith("-"):
            return None
        if tok.startswith("--"):
            if "=" not in tok:
                if tok in _LONG_WITH_VALUE:
                    i += 1
                elif (tok in _LONG_OPTIONAL_VALUE and i + 1 < len(argv)
                      and _is_number(argv[i + 1])):
                    i += 1
            i += 1
            continue
        for j in range(1, len(tok)):  # a cluster of short flags, e.g. -lvo out
            ch = tok[j]
            if ch in "mc":
                if j + 1 < len(tok):
                    value, rest = tok[j + 1:], list(argv[i + 1:])
                elif i + 1 < len(argv):
                    value, rest = argv[i + 1], list(argv[i + 2:])
                else:
                    raise KernprofError(f"argument -{ch}: expected one argument")
                options = list(argv[:i]) + ([tok[:j]] if j > 1 else [])
                return options, ch, value, rest
            if ch in _SHORT_WITH_VALUE:
                if j == len(tok) - 1:
                    i += 1  # the value is the next word
                break
            if ch in _SHORT_OPTIONAL_VALUE:
                if j == len(tok) - 1 and i + 1 < len(argv) and _is_number(argv[i + 1]):
                    i += 1
                break
        i += 1
    return None


def build_parser(with_script: bool = True) -> argparse.ArgumentParser:
    """Return kernprof's parser; ``with_script=False`` parses only the options before -m/-c.

    Options that a configuration file can set default to None here; see
    :func:`apply_config`.
    """
    parser = _Parser(
        prog=PROG, allow_abbrev=False,
        description="Run and profile a Python script, module (-m), code string (-c) "
                    "or a script from standard input (-).")
    parser.add_argument("-V", "--version", action="version", version=_version(),
                        help="print the version and exit")
    conf = parser.add_mutually_exclusive_group()
    conf.add_argument("--config", metavar="FILE",
                      help="read the [tool.lineprof] (or [tool.line_profiler]) tables of "
                           "this TOML file instead of looking for one (docs/config.md)")
    conf.add_argument("--no-config", action="store_true",
                      help="read no configuration file: the defaults and these options only")
    prof = parser.add_argument_group("profiling options")
    add_switch(prof, "-l", "--line-by-line",
                help="line-profile the functions decorated with @profile "
                     "(instead of cProfile); implies --builtin")
    add_switch(prof, "-b", "--builtin",
                help="put `profile` in the builtins: @profile, `with profile:`, "
                     "profile.enable_by_count()/disable_by_count()")
    prof.add_argument("-s", "--setup", metavar="SETUP",
                      help="Python file to run before the profiled code, outside the profiler")
    out = parser.add_argument_group("output options")
    out.add_argument("-o", "--outfile", metavar="OUTFILE",
                     help="where to save the profile (default: <script>.lprof with -l, "
                          "<script>.prof without)")
    out.add_argument("-v", "--verbose", "--view", action="count", default=None,
                     help="show the results after saving them")
    out.add_argument("-q", "--quiet", action="count", default=0,
                     help="print less: once, no 'Wrote profile results' message; "
                          "twice, no stdout; three times, no stderr")
    add_switch(out, "-r", "--rich",
                help="syntax-highlighted results with -v (needs the 'rich' package)")
    out.add_argument("-u", "--unit", type=positive_float, default=None,
                     help=f"output unit in seconds for -v (default: {DEFAULT_UNIT:g})")
    add_switch(out, "-z", "--skip-zero", help="with -v, hide functions that were never called")
    add_switch(out, "--summarize", help="with -v, end with one line of total time per function")
    out.add_argument("-i", "--output-interval", type=positive_float, nargs="?", const=1.0,
                     default=None, metavar="SECONDS",
                     help="with -l, rewrite OUTFILE with a snapshot every SECONDS "
                          "(default 1), from a native thread: a killed program "
                          "keeps its profile")
    live = parser.add_argument_group("live view options (with -l)")
    live.add_argument("--live", metavar="ADDR",
                      help="serve live snapshots at ADDR (HOST:PORT, PORT or unix:PATH; "
                           "host defaults to 127.0.0.1; port 0 picks a free one) "
                           "for `python -m lineprof top ADDR`")
    add_switch(live, "--live-allow-remote",
                help="allow --live on an address other than loopback (anyone "
                     "who can reach it can read the profile)")
    if with_script:
        parser.add_argument("script", nargs="?",
                            metavar='{path/to/script | -m module | -c "code" | -}',
                            help="the script, module or code to run (-: read the script "
                                 "from standard input)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Return the options, with ``mode`` ("script", "m", "c" or "stdin") and ``target`` set.

    The configuration file fills in what the command line leaves out
    (:func:`apply_config`).  argparse's usage errors raise SystemExit(2);
    a bad configuration file raises KernprofError.
    """
    try:
        argv = _bare_interval(argv)
        special = split_special(argv)
    except KernprofError as exc:
        build_parser().error(str(exc))
    if special is None:
        parser = build_parser()
        opts = parser.parse_args(argv)
        if opts.script is None:
            parser.error("nothing to run: give a script, -m module, -c code or - (stdin)")
        opts.mode, opts.target = ("stdin" if opts.script == "-" else "script"), opts.script
    else:
        options, flag, value, rest = special
        opts = build_parser(with_script=False).parse_args(options)
        if opts.args:  # cannot happen: split_special stops at the first word
            build_parser().error(f"unexpected arguments before -{flag}: {opts.args}")
        opts.mode, opts.target, opts.args = flag, value, rest
    apply_config(opts)
    opts.verbosity = opts.verbose - opts.quiet
    return opts


def apply_config(opts: argparse.Namespace) -> None:
    """Fill in the options the command line left out from the configuration file; returns None.

    ``verbose`` adds up: the file's count, then each ``-v``.  Empty strings
    (``outfile``, ``setup``, ``live``) and an interval of 0 mean "none".
    Raises KernprofError for a file that cannot be used (see
    :func:`lineprof.config.load`).
    """
    try:
        conf = config.load("kernprof", opts.config, enabled=not opts.no_config)
    except config.ConfigError as exc:
        raise KernprofError(str(exc)) from None
    for key, value in conf.values.items():
        given = getattr(opts, key)
        if key == "verbose":
            opts.verbose = value + (given or 0)
        elif given is None:
            none = value == "" or (key == "output_interval" and value == 0)
            setattr(opts, key, None if none else value)
    opts.config = conf
