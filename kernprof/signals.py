"""kernprof and signals: the profile is written however a signal ends the run.

* SIGINT unwinds the code as a KeyboardInterrupt, as under ``python``.
* Every other signal whose default action ends the process (:data:`FATAL`:
  SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, ...) and that still
  has that default action when the run starts raises :class:`Terminated`
  in the main thread instead: the code unwinds, kernprof writes the
  profile, and the process then ends by that same signal.  Python starts
  with SIGPIPE and SIGXFSZ ignored; they are left so unless the parent gave
  them their default action back.  Code that sets a handler of its own
  keeps it; a forked child dies by the signal at once, as by default.
* From the start of :func:`kernprof.main` until the code runs, the same
  signals (and SIGINT) are only noted (:class:`HeldSignals` with
  ``default_only``); the code then does not run, the (empty) profile is
  written and the signal takes effect, with no traceback of kernprof's.
* While the profile is being written, all of them wait (:class:`HeldSignals`).

Synchronous faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP,
SIGSYS) are not caught: Python code cannot run safely after them.  This
module imports only the standard library's lightest modules, so that
:func:`kernprof.main` can hold signals before anything else is imported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

SIGINT: Optional[int] = getattr(signal, "SIGINT", None)
SIGTERM: Optional[int] = getattr(signal, "SIGTERM", None)

_FATAL_NAMES = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM",
                "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGXFSZ", "SIGPIPE", "SIGIO",
                "SIGPWR")
#: The signals whose default action ends the process and that kernprof
#: turns into an unwinding of the code (SIGTERM first).
FATAL: Tuple[int, ...] = tuple(dict.fromkeys(
    int(getattr(signal, name)) for name in _FATAL_NAMES if hasattr(signal, name)))
#: The signals held back while kernprof starts and while it writes.
HELD: Tuple[int, ...] = ((SIGINT,) if SIGINT is not None else ()) + FATAL


class Terminated(SystemExit):
    """Raised by kernprof's handler of a fatal signal to unwind the profiled code.

    A SystemExit, so that asyncio passes it through tasks and the loop as
    it does KeyboardInterrupt.  Its code is the shell's status for a death
    by that signal (128 + signum), for the case where it escapes kernprof.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


#: The process that installed kernprof's handlers.
_owner: Optional[int] = None
_fork_hook_registered = False


def _on_fatal(signum: int, frame: Any) -> None:
    if os.getpid() != _owner:  # a child forked by the code: die as by default
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
        return
    raise Terminated(signum)


def _default_in_child() -> None:
    # A forked child (multiprocessing's workers) dies by SIGTERM at once, as
    # under python: Pool.terminate() and Process.terminate() rely on it.
    for signum in FATAL:
        with contextlib.suppress(OSError, ValueError, TypeError):
            if signal.getsignal(signum) is _on_fatal:
                signal.signal(signum, signal.SIG_DFL)


def in_main_thread() -> bool:
    """Return whether this is the main thread, the only one that can set handlers."""
    return threading.current_thread() is threading.main_thread()


def _is_default(signum: int, handler: Any) -> bool:
    if signum == SIGINT:
        return handler is signal.default_int_handler
    return handler == signal.SIG_DFL


def install_fatal(defaults: Optional[Dict[int, Any]] = None) -> List[int]:
    """Make each fatal signal that has its default action raise :class:`Terminated`.

    ``defaults`` maps signals to the handler to judge instead of the one in
    place (what :meth:`HeldSignals.handover` passes).  Only in the main
    thread; returns the signals whose handler was installed.
    """
    global _owner, _fork_hook_registered
    if not in_main_thread():
        return []
    installed = []
    for signum in FATAL:
        try:
            current = (defaults or {}).get(signum, signal.getsignal(signum))
            if current != signal.SIG_DFL:
                continue
            _owner = os.getpid()
            signal.signal(signum, _on_fatal)
        except (OSError, ValueError):
            continue
        installed.append(signum)
    if installed and not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_default_in_child)
        _fork_hook_registered = True
    return installed


def uninstall_fatal() -> None:
    """Give each fatal signal whose handler is still kernprof's its default action back; returns None."""
    for signum in FATAL:
        with contextlib.suppress(OSError, ValueError, TypeError):
            if signal.getsignal(signum) is _on_fatal:
                signal.signal(signum, signal.SIG_DFL)


def end_by_signal(signum: int) -> None:
    """Flush the output and end the process by ``signum``'s default action; does not return."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError, ValueError):
        signal.signal(signum, signal.SIG_DFL)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        signal.raise_signal(signum)
    os._exit(128 + signum)  # the signal did not end the process (not the main thread?)


def exception_for(signum: int) -> BaseException:
    """Return what the signal raises in the code: KeyboardInterrupt for SIGINT, else :class:`Terminated`."""
    return KeyboardInterrupt() if signum == SIGINT else Terminated(signum)


class HeldSignals:
    """Holds SIGINT and the fatal signals back: while kernprof starts, and while the profile is written.

    :meth:`hold` puts in handlers that only note the signal (for every
    thread: the handlers are process-wide, unlike a signal mask);
    :meth:`release` puts the previous handlers back, and :meth:`redeliver`
    then sends the noted signals again, so that those handlers get them as
    if they had come just after.  ``received`` lists the signals that came
    in between, in order.  With ``default_only``, only the signals that
    have their default action (SIGINT: Python's KeyboardInterrupt) are
    held.  A handler set from C (which Python cannot put back) is left
    alone.  All do nothing outside the main thread.
    """

    def __init__(self, default_only: bool = False) -> None:
        self.received: List[int] = []
        self._saved: Dict[int, Any] = {}
        self._redelivered = False
        self._default_only = default_only

    def _note(self, signum: int, frame: Any) -> None:
        self.received.append(signum)

    def hold(self) -> None:
        """Install the noting handlers that are not yet installed; returns None.

        Calling it again finishes a hold that a signal interrupted.
        """
        if not in_main_thread():
            return
        for signum in HELD:
            if signum in self._saved:
                continue
            try:
                current = signal.getsignal(signum)
                if current is None or (self._default_only and not _is_default(signum, current)):
                    continue
                self._saved[signum] = signal.signal(signum, self._note)
            except (OSError, ValueError):
                pass

    def handover(self) -> None:
        """Replace the noting handlers by the run's, with no moment at the default action; returns None.

        SIGINT gets back what it had; each fatal signal that had its
        default action gets kernprof's handler (:func:`install_fatal`), any
        other its previous handler.  ``received`` is kept.
        """
        install_fatal(self._saved)  # over our noting handlers where the saved one was SIG_DFL
        for signum, previous in self._saved.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                if signal.getsignal(signum) == self._note:
                    signal.signal(signum, previous)
        self._saved.clear()

    def release(self) -> None:
        """Put the previous handlers back; returns None.  Signals received since stay in ``received``."""
        while self._saved:
            signum, previous = self._saved.popitem()
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(signum, previous)

    def redeliver(self) -> None:
        """Send each signal received while held to this process once more, fatal ones first; returns None.

        Call it after :meth:`release`, once.  The handlers run now and
        raise what they raise (KeyboardInterrupt for SIGINT's default); an
        ignored signal stays ignored, and one whose action is the default
        ends the process, output flushed first.
        """
        if self._redelivered or not self.received:
            return
        self._redelivered = True
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for signum in sorted(set(self.received), key=lambda s: (s == SIGINT, s != SIGTERM, s)):
            signal.raise_signal(signum)


def stronger(outcome: Optional[BaseException], exc: BaseException) -> BaseException:
    """Return which of the run's ``outcome`` and a later signal's ``exc`` decides the exit.

    A fatal signal that kernprof caught is final; otherwise the later one
    wins, except that a later KeyboardInterrupt does not replace an earlier
    one.
    """
    if isinstance(outcome, Terminated):
        return outcome
    if isinstance(outcome, KeyboardInterrupt) and isinstance(exc, KeyboardInterrupt):
        return outcome
    return exc
