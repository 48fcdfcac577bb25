"""``python -m lineprof top ADDR``: a live view of a program running under
``kernprof -l --live ADDR`` (or ``LineProfiler.start_worker(live=ADDR)``).

The program's native worker thread answers even while its event loop is
blocked, so the view shows what the program does right now, stuck or not.
The protocol is in docs/worker.md.  Errors print one line,
``lineprof: <message>``, and exit 1 (usage errors: ``lineprof: error:``,
exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time
from typing import Any, Dict, List, NoReturn, Optional, Sequence, Tuple

from ._version import __version__
from .cli import milliseconds, positive_float, positive_int
from .errors import LineprofError
from .report import DEFAULT_SLOW, printable, source_line
from .stats import LineStats, now_entries

__all__ = ["LiveClient", "LiveError", "LiveGone", "main", "now_entries", "render",
           "snapshot_json"]

PROG = "lineprof"
MAGIC = b"LINEPROF/1"
MAX_HEADER = 256
#: The largest reply accepted, in bytes.  The server has no cap of its own
#: (a snapshot is a .lprof file: 36 bytes per recorded line, ~100 per task);
#: 256 MiB would be over 7 million recorded lines, far beyond a real
#: program's.  A longer announcement is refused before anything is read.
MAX_REPLY = 256 << 20
#: Replies are read in pieces of at most this many bytes, so memory grows
#: with what arrives, not with what the server announced.
CHUNK = 1 << 20


class LiveError(LineprofError):
    """The live view could not be read: nothing listens, no answer, or a bad answer."""


class LiveGone(LiveError):
    """Nothing listens at the address, or the program closed the connection."""


def _c() -> Any:
    from . import _lineprof

    return _lineprof


def parse_address(text: str) -> Dict[str, Any]:
    """Return the address as the worker reads it; raise ValueError if it is not one."""
    return _c().parse_address(text)


class LiveClient:
    """One connection to a live view, kept open across snapshots."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.addr = parse_address(address)
        self.text: str = self.addr["text"]
        self.timeout = timeout
        self.sock: Optional[socket.socket] = None
        self._pending = b""

    def close(self) -> None:
        """Close the connection (a later request opens a new one); returns None."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._pending = b""

    def _connect(self) -> socket.socket:
        a = self.addr
        try:
            if a["family"] == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                target: Any = a["path"]
            else:
                family = socket.AF_INET6 if a["family"] == "inet6" else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                target = (a["host"], a["port"])
            sock.settimeout(self.timeout)
            sock.connect(target)
        except (ConnectionRefusedError, FileNotFoundError):
            sock.close()
            raise LiveGone(f"nothing listens at {self.text} (is the program running "
                            f"under kernprof -l --live?)") from None
        except socket.timeout:
            sock.close()
            raise LiveError(f"{self.text} did not answer within {self.timeout:g} s") from None
        except OSError as exc:
            sock.close()
            raise LiveError(f"cannot connect to {self.text}: {exc.strerror or exc}") from None
        return sock

    def _read_line(self) -> bytes:
        assert self.sock is not None
        while b"\n" not in self._pending:
            if len(self._pending) > MAX_HEADER:
                raise LiveError(f"{self.text} does not speak the lineprof protocol")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionResetError
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    def _read_exact(self, n: int) -> bytearray:
        """Return the next ``n`` bytes, read in pieces of at most CHUNK.

        Raises ConnectionResetError if the connection ends first, or
        socket.timeout if a piece does not come in time.
        """
        assert self.sock is not None
        data = bytearray(self._pending[:n])
        self._pending = self._pending[n:]
        while len(data) < n:
            chunk = self.sock.recv(min(CHUNK, n - len(data)))
            if not chunk:
                raise ConnectionResetError
            data += chunk
        return data

    def request(self, verb: str = "SNAPSHOT") -> bytearray:
        """Send one request and return the reply's payload.

        Raises LiveGone if nothing listens or the connection drops at once,
        LiveError for any other failure, among them a reply announced over
        MAX_REPLY bytes (refused before it is read).
        """
        fresh = self.sock is None
        if fresh:
            self.sock = self._connect()
        try:
            self.sock.sendall(MAGIC + b" " + verb.encode() + b"\n")
            words = self._read_line().split(b" ", 3)
            if len(words) < 3 or words[0] != MAGIC:
                raise LiveError(f"{self.text} does not speak the lineprof protocol")
            if words[1] == b"ERR":
                message = words[3].decode(errors="replace") if len(words) > 3 else ""
                raise LiveError(f"{self.text} answered: {message or words[2].decode()}")
            if words[1] != b"OK" or not words[2].isdigit():
                raise LiveError(f"{self.text} does not speak the lineprof protocol")
            size = int(words[2])
            if size > MAX_REPLY:
                raise LiveError(f"{self.text} announced a reply of {size} bytes, over the "
                                f"limit of {MAX_REPLY} ({MAX_REPLY >> 20} MiB): "
                                f"not a lineprof live view?")
            return self._read_exact(size)
        except LiveError:
            self.close()
            raise
        except socket.timeout:
            self.close()
            raise LiveError(f"{self.text} did not answer within {self.timeout:g} s") from None
        except OSError:  # the connection dropped: the program ended, or restarted it
            self.close()
            if fresh:
                raise LiveGone(f"{self.text} closed the connection") from None
            return self.request(verb)  # once more, on a new connection

    def snapshot(self) -> Tuple[LineStats, List[Dict[str, Any]]]:
        """Return the program's profile now and its running lines (see :func:`now_entries`)."""
        try:
            raw = _c().parse(self.request("SNAPSHOT"))
        except ValueError as exc:  # FormatError
            self.close()
            raise LiveError(f"{self.text} sent a damaged snapshot: {exc}") from None
        return LineStats.from_dict(raw), now_entries(raw)


def snapshot_json(stats: LineStats, now: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Return the JSON v1 object of ``stats`` plus its ``now`` list."""
    data = stats.to_dict()
    data["now"] = now
    return data


# -- the text view --------------------------------------------------------

def _seconds(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} s"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} us"


def _code(file: str, lineno: int) -> str:
    return printable(source_line(file, lineno).strip())


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def render(stats: LineStats, now: List[Dict[str, Any]], *, address: str = "",
           top: int = 10, slow: float = 0.1, width: int = 100) -> str:
    """Return one screen of the live view, ``width`` columns wide.

    Names, files and source lines come from the program: their control
    characters are escaped (:func:`lineprof.report.printable`).
    """
    unit = stats.unit
    rows = [(fs, ln, rec) for fs in stats.functions for ln, rec in fs.lines.items()]
    meta = stats.meta
    head = f"lineprof top  {printable(address)}"
    if meta.get("python"):
        head += f"  python {printable(meta['python'])} ({printable(meta.get('backend', '?'))})"
    head += f"  {time.strftime('%H:%M:%S')}"
    live_tasks = sum(1 for t in stats.tasks if not t.is_fold)
    out = [head, f"{len(stats.functions)} profiled functions, "
                 f"{sum(r.hits for _, _, r in rows):,} line hits, {live_tasks} tasks seen", ""]

    out.append("Running now")
    if not now:
        out.append("  (no thread is on a profiled line)")
    for n in now:
        where = printable(f"{n['function']} ({os.path.basename(n['file'])}:{n['lineno']})")
        task = f"  task {printable(n['task'])}" if n["task"] else ""
        out.append(_clip(f"  thread {n['thread']:#x}{task}  {where}  for "
                         f"{_seconds(n['elapsed'] * unit)}", width))
        code = _code(n["file"], n["lineno"])
        if code:
            out.append(_clip(f"      {code}", width))
    out.append("")

    def table(title: str, label: str, value: Any) -> None:
        picked = sorted((r for r in rows if value(r[2]) > 0), key=lambda r: -value(r[2]))
        out.append(title)
        out.append(f"  {label:>10}  {'Hits':>9}  {'Function (file:line)':<40}  Code")
        if not picked:
            out.append("  (none)")
        for fs, ln, rec in picked[:top]:
            where = printable(f"{fs.name} ({os.path.basename(fs.file)}:{ln})")
            cells = f"  {_seconds(value(rec) * unit):>10}  {rec.hits:>9,}  {_clip(where, 40):<40}  "
            out.append(_clip(cells + _code(fs.file, ln), width))
        out.append("")

    table("Top lines by active time", "Active", lambda r: r.time)
    table("Top lines by await time", "Await", lambda r: r.await_)
    table(f"Slow lines (Max over {_seconds(slow)}: blocked their thread that long)", "Max",
          lambda r: r.max_ if r.max_ * unit > slow else 0)
    return "\n".join(line.rstrip() for line in out).rstrip() + "\n"


# -- the command ------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for ``python -m lineprof top``."""
    parser = _Parser(prog=f"{PROG} top",
                     description="Watch a program that runs under kernprof -l --live ADDR.")
    parser.add_argument("address", metavar="ADDR",
                        help="HOST:PORT, PORT (on 127.0.0.1) or unix:PATH, as given to --live")
    parser.add_argument("-V", "--version", action="version", version=__version__,
                        help="print lineprof's version and exit")
    parser.add_argument("--once", action="store_true", help="show one snapshot and exit")
    parser.add_argument("--json", action="store_true",
                        help="with --once: print the snapshot as JSON (format version 1, "
                             "plus \"now\")")
    parser.add_argument("-n", "--interval", type=positive_float, default=1.0, metavar="SECONDS",
                        help="refresh period (default: 1)")
    parser.add_argument("--top", type=positive_int, default=10, metavar="N",
                        help="rows per table (default: 10)")
    parser.add_argument("--slow", type=milliseconds, default=DEFAULT_SLOW, metavar="MS",
                        help="list lines whose Max exceeds MS milliseconds, as "
                             f"python -m lineprof --slow does (default: {DEFAULT_SLOW * 1000:g})")
    parser.add_argument("--timeout", type=positive_float, default=5.0, metavar="SECONDS",
                        help="give up on an answer after this long (default: 5)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m lineprof top`` with ``argv``; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.json and not args.once:
        parser.error("--json needs --once")
    try:
        client = LiveClient(args.address, timeout=args.timeout)
    except ValueError as exc:
        parser.error(str(exc))
    tty = sys.stdout.isatty()
    shown = 0
    try:
        while True:
            try:
                stats, now = client.snapshot()
            except LiveGone as exc:
                if not shown:
                    print(f"{PROG}: {exc}", file=sys.stderr)
                    return 1
                print(f"{PROG}: {client.text} went away (the program ended)", file=sys.stderr)
                return 0
            except LiveError as exc:
                print(f"{PROG}: {exc}", file=sys.stderr)
                return 1
            if args.json:
                sys.stdout.write(json.dumps(snapshot_json(stats, now), indent=2) + "\n")
                return 0
            width = shutil.get_terminal_size((100, 24)).columns
            screen = render(stats, now, address=client.text, top=args.top,
                            slow=args.slow, width=width)
            sys.stdout.write(("\x1b[H\x1b[2J" if tty else ("\n" if shown else "")) + screen)
            sys.stdout.flush()
            shown += 1
            if args.once:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    finally:
        client.close()
