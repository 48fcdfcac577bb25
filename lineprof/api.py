"""``LineProfiler``: the Python face of one ``_lineprof.Profiler``.

The class follows line_profiler's ``LineProfiler``: ``add_function``,
``enable_by_count``/``disable_by_count``, ``with prof:``, ``runcall``,
use as a decorator, ``print_stats``, ``dump_stats`` and ``get_stats``.
"""

from __future__ import annotations

import dis
import functools
import inspect
import io
import os
import threading
import types
import warnings
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, TypeVar

from .stats import LineStats

__all__ = ["ByCountWrapping", "LineProfiler", "code_kind", "underlying_functions"]

F = TypeVar("F", bound=Callable[..., Any])

CO_GENERATOR = inspect.CO_GENERATOR
CO_COROUTINE = inspect.CO_COROUTINE
CO_ITERABLE_COROUTINE = inspect.CO_ITERABLE_COROUTINE
CO_ASYNC_GENERATOR = inspect.CO_ASYNC_GENERATOR

_WRAPPER_MARK = "__lineprof_profiler__"
_MAX_UNWRAP = 100


def code_kind(code: types.CodeType) -> str:
    """Return the kind of ``code`` from its flags: "function", "generator", "coroutine" or "async_generator"."""
    flags = code.co_flags
    if flags & CO_ASYNC_GENERATOR:
        return "async_generator"
    if flags & (CO_COROUTINE | CO_ITERABLE_COROUTINE):
        return "coroutine"
    if flags & CO_GENERATOR:
        return "generator"
    return "function"


def _unwrap(func: Any) -> Any:
    """Follow ``__wrapped__`` (functools.wraps, lru_cache, our wrappers) to the innermost callable.

    Stops at a cycle, after _MAX_UNWRAP steps, or where the next object has
    no code to profile; returns the last object that has a ``__code__``, or
    ``func`` itself if none has.
    """
    seen = {id(func)}
    best = func if _code_of(func) is not None else None
    current = func
    for _ in range(_MAX_UNWRAP):
        try:
            inner = current.__wrapped__
        except Exception:  # AttributeError, or a proxy that raises anything
            break
        if id(inner) in seen or inner is None:
            break
        seen.add(id(inner))
        current = inner
        if isinstance(current, (classmethod, staticmethod, types.MethodType)):
            current = current.__func__
        if _code_of(current) is not None:
            best = current
    return func if best is None else best


def _code_of(obj: Any) -> Optional[types.CodeType]:
    """Return ``obj.__code__`` if it is a code object, else None (never raises)."""
    try:
        code = obj.__code__
    except Exception:  # AttributeError, or a proxy that raises anything
        return None
    return code if isinstance(code, types.CodeType) else None


def underlying_functions(obj: Any) -> List[Any]:
    """Return the functions (or code objects) whose code ``obj`` runs.

    Handles functions of every kind, bound methods, ``classmethod``,
    ``staticmethod``, ``property`` (fget/fset/fdel), ``functools.partial``,
    ``functools.cached_property`` and ``functools.wraps`` chains.  Raises
    TypeError for objects with no Python code (builtins, C functions).
    """
    if isinstance(obj, types.CodeType):
        return [obj]
    if isinstance(obj, property):
        found: List[Any] = []
        for part in (obj.fget, obj.fset, obj.fdel):
            if part is not None:
                found.extend(underlying_functions(part))
        if not found:
            raise TypeError(f"cannot profile {obj!r}: the property has no getter, setter or deleter")
        return found
    if isinstance(obj, (classmethod, staticmethod, types.MethodType)):
        return underlying_functions(obj.__func__)
    if isinstance(obj, (functools.partial, functools.partialmethod)):
        return underlying_functions(obj.func)
    if isinstance(obj, functools.cached_property):
        return underlying_functions(obj.func)
    inner = _unwrap(obj)
    if _code_of(inner) is not None:
        return [inner]
    raise TypeError(
        f"cannot profile {obj!r}: it has no Python code object "
        f"(builtins, C functions and classes cannot be line-profiled)")


def _code_and_name(func: Any) -> "tuple[types.CodeType, str]":
    if isinstance(func, types.CodeType):
        return func, getattr(func, "co_qualname", func.co_name)
    code = func.__code__
    name = getattr(func, "__qualname__", None)
    if not isinstance(name, str) or not name:
        name = getattr(code, "co_qualname", code.co_name)
    return code, name


def _source_file(code: types.CodeType) -> str:
    filename = code.co_filename
    if not os.path.isabs(filename) and os.path.exists(filename):
        filename = os.path.abspath(filename)
    return filename


def _last_line(code: types.CodeType) -> int:
    """Return the last line of the code's source, or its last line with bytecode."""
    first = code.co_firstlineno
    try:
        lines, start = inspect.getsourcelines(code)
    except Exception:  # no source: OSError, TypeError, tokenizer errors
        pass
    else:
        if lines:
            return max(first, max(start, 1) + len(lines) - 1)
    starts = [line for _, line in dis.findlinestarts(code) if line is not None]
    return max([first] + starts)


def _runs_suspendable_code(func: Any) -> bool:
    """Return True if a plain callable ends up running coroutine or generator code."""
    try:
        impls = underlying_functions(func)
    except TypeError:
        return False
    return any(code_kind(_code_and_name(f)[0]) != "function" for f in impls)


class ByCountWrapping:
    """Mixin: decorator wrappers built on ``enable_by_count``/``disable_by_count``.

    Used by :class:`LineProfiler` and by kernprof's cProfile-backed
    profiler.  The host class provides ``enable_by_count`` and
    ``disable_by_count``.  See :class:`LineProfiler` for what each kind of
    function gets.
    """

    _pinned = False

    def enable_by_count(self) -> None:  # pragma: no cover - provided by the host
        raise NotImplementedError

    def disable_by_count(self) -> None:  # pragma: no cover - provided by the host
        raise NotImplementedError

    def wrap_callable(self, func: Any) -> Any:
        """Return a wrapper of the same kind as ``func`` that enables profiling while it runs."""
        if getattr(func, _WRAPPER_MARK, None) is self:
            return func
        if isinstance(func, property):
            return property(*(None if f is None else self.wrap_callable(f)
                              for f in (func.fget, func.fset, func.fdel)), func.__doc__)
        if isinstance(func, (classmethod, staticmethod)):
            return type(func)(self.wrap_callable(func.__func__))
        if isinstance(func, types.MethodType):
            return types.MethodType(self.wrap_callable(func.__func__), func.__self__)
        if inspect.isasyncgenfunction(func):
            wrapper = self._wrap_async_generator(func)
        elif inspect.iscoroutinefunction(func):
            wrapper = self._wrap_coroutine(func)
        elif inspect.isgeneratorfunction(func):
            wrapper = self._wrap_generator(func)
        else:
            if _runs_suspendable_code(func):
                self._pin()
            wrapper = self._wrap_plain(func)
        setattr(wrapper, _WRAPPER_MARK, self)
        return wrapper

    def _pin(self) -> None:
        """Take one permanent count, once, so the hook stays on."""
        if not self._pinned:
            self._pinned = True
            self.enable_by_count()

    def _wrap_plain(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.enable_by_count()
            try:
                return func(*args, **kwargs)
            finally:
                self.disable_by_count()

        return wrapper

    def _wrap_coroutine(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            coro = func(*args, **kwargs)
            self.enable_by_count()
            try:
                return await coro
            finally:
                # CPython 3.13+ closes a coroutine suspended outside any try
                # block without running it: end its suspension here.
                self._c.drop(coro)
                self.disable_by_count()

        return wrapper

    def _wrap_generator(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            gen = func(*args, **kwargs)
            self.enable_by_count()
            try:
                return (yield from gen)
            finally:
                self._c.drop(gen)  # see _wrap_coroutine
                self.disable_by_count()

        code = getattr(func, "__code__", None)
        if code is not None and code.co_flags & CO_ITERABLE_COROUTINE:
            wrapper = types.coroutine(wrapper)  # keep it awaitable
        return wrapper

    def _wrap_async_generator(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            agen = func(*args, **kwargs)
            self.enable_by_count()
            try:
                step = agen.asend(None)
                while True:
                    try:
                        item = await step
                    except StopAsyncIteration:
                        return
                    try:
                        sent = yield item
                    except GeneratorExit:
                        await agen.aclose()
                        raise
                    except BaseException as exc:  # thrown in: pass it on
                        step = agen.athrow(exc)
                    else:
                        step = agen.asend(sent)
            finally:
                self.disable_by_count()

        return wrapper


class LineProfiler(ByCountWrapping):
    """Records per-line hits and times (and await time) of chosen functions.

    ``LineProfiler(*funcs)`` registers ``funcs`` at once.  Only one profiler
    can be enabled at a time in a process (the extension refuses a second).

    Used as a decorator, the profiler registers the function's original
    ``__code__`` and returns a wrapper of the same kind, so
    ``inspect.iscoroutinefunction`` and friends still hold:

    * a plain function gets a wrapper that enables the hook (by count) for
      the duration of each call, as in line_profiler;
    * a coroutine function gets an ``async def`` wrapper, a generator
      function a generator wrapper (``yield from``), an async generator
      function an async generator wrapper; each keeps the hook enabled from
      its first resumption until it finishes or is closed, suspensions
      included, so the time spent suspended at an ``await``/``yield`` is
      seen by the hook from start to end;
    * a plain callable whose profiled code is a coroutine or generator (a
      sync decorator around an ``async def``) cannot be held that way, so the
      profiler is then enabled once and stays enabled until
      ``disable_by_count`` brings its count to zero.

    ``kernprof -l`` and ``LINEPROF=1`` go further and keep their profiler
    enabled for the whole run.
    """

    def __init__(self, *functions: Any) -> None:
        """Create the recording engine and register ``functions``.

        Raises ImportError if the C extension is not built, TypeError for a
        function with no Python code.
        """
        try:
            from . import _lineprof
        except ImportError as exc:
            raise ImportError(f"lineprof's C extension (lineprof._lineprof) cannot be "
                              f"imported: {exc}") from exc

        self._c = _lineprof.Profiler()
        self._kinds: Dict[str, int] = {
            "function": _lineprof.KIND_FUNCTION,
            "generator": _lineprof.KIND_GENERATOR,
            "coroutine": _lineprof.KIND_COROUTINE,
            "async_generator": _lineprof.KIND_ASYNC_GENERATOR,
        }
        self.timer_unit: float = _lineprof.UNIT
        self.functions: List[Any] = []
        self.enable_count = 0
        self._lock = threading.Lock()
        self._reported_error: Optional[str] = None
        for func in functions:
            self.add_function(func)

    # -- registration ---------------------------------------------------

    def add_function(self, func: Any) -> None:
        """Register the code of ``func`` for profiling; returns None.

        Accepts what :func:`underlying_functions` accepts; a ``property``
        registers its getter, setter and deleter.  Raises TypeError for an
        object with no Python code.
        """
        for impl in underlying_functions(func):
            code, name = _code_and_name(impl)
            kind = code_kind(code)
            self._c.add_code(code, self._kinds[kind], _source_file(code), name,
                             code.co_firstlineno, _last_line(code))
            if all(impl is not f for f in self.functions):
                self.functions.append(impl)

    def add_callable(self, func: Any) -> int:
        """Register ``func`` like :meth:`add_function`; return 1 if added, 0 if it has no Python code."""
        try:
            self.add_function(func)
        except TypeError:
            return 0
        return 1

    # -- switching the hook on and off ------------------------------------

    @property
    def enabled(self) -> bool:
        """Return True while the hook is installed."""
        return bool(self._c.enabled)

    @property
    def error(self) -> Optional[str]:
        """Return None, or the extension's one-line description of an internal failure."""
        return self._c.error

    def enable(self) -> None:
        """Install the hook now (not counted); returns None.  Raises RuntimeError if another profiler is enabled."""
        if not self._c.enabled:
            self._c.enable()

    def disable(self) -> None:
        """Remove the hook now (not counted); returns None."""
        if self._c.enabled:
            self._c.disable()
        self._warn_on_error()

    def enable_by_count(self) -> None:
        """Count one more user; install the hook when the count goes from 0 to 1.  Returns None."""
        with self._lock:
            if self.enable_count == 0:
                self.enable()
            self.enable_count += 1

    def disable_by_count(self) -> None:
        """Count one user less; remove the hook when the count drops to 0.  Returns None."""
        with self._lock:
            if self.enable_count > 0:
                self.enable_count -= 1
                if self.enable_count == 0:
                    self.disable()

    def __enter__(self) -> "LineProfiler":
        self.enable_by_count()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.disable_by_count()

    def runcall(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)`` with the hook enabled and return its result."""
        self.enable_by_count()
        try:
            return func(*args, **kwargs)
        finally:
            self.disable_by_count()

    def runctx(self, cmd: str, globals: Dict[str, Any], locals: Any) -> "LineProfiler":
        """Execute ``cmd`` with the hook enabled; return self."""
        self.enable_by_count()
        try:
            exec(cmd, globals, locals)
        finally:
            self.disable_by_count()
        return self

    def run(self, cmd: str) -> "LineProfiler":
        """Execute ``cmd`` in ``__main__``'s namespace with the hook enabled; return self."""
        import __main__

        main_dict = __main__.__dict__
        return self.runctx(cmd, main_dict, main_dict)

    def __call__(self, func: F) -> F:
        """Register ``func`` and return a profiling wrapper of the same kind (see the class doc).

        Raises TypeError for objects with no Python code.
        """
        self.add_function(func)
        return self.wrap_callable(func)

    # -- results ----------------------------------------------------------

    def _warn_on_error(self) -> None:
        err = self._c.error
        if err and err != self._reported_error:
            self._reported_error = err
            warnings.warn(f"lineprof stopped recording: {err}", RuntimeWarning, stacklevel=3)

    def get_stats(self) -> LineStats:
        """Return the profile so far as :class:`~lineprof.stats.LineStats`."""
        self._warn_on_error()
        return LineStats.from_dict(self._c.snapshot())

    def dump_stats(self, filename: "os.PathLike[str] | str") -> None:
        """Write the profile so far to ``filename`` (a ``.lprof`` file); returns None.  Raises OSError."""
        self._warn_on_error()
        self._c.dump(os.fspath(filename))

    def clear(self) -> None:
        """Zero all counters; registered functions stay.  Returns None."""
        self._c.clear()

    # -- the native worker (docs/worker.md) --------------------------------

    def start_worker(self, flush: "Optional[os.PathLike[str] | str]" = None,
                     interval: float = 1.0, live: Optional[str] = None,
                     allow_remote: bool = False,
                     meta: Optional[Dict[str, str]] = None) -> str:
        """Start the native worker thread; return the live address served ("" without ``live``).

        With ``flush``, a complete snapshot of the profile replaces that
        file every ``interval`` seconds (what ``kernprof -i`` does); with
        ``live`` (``HOST:PORT``, ``PORT`` or ``unix:PATH``), snapshots are
        served to ``python -m lineprof top`` (``kernprof --live``).  The
        thread never takes the GIL, so both go on while the program is
        stuck.  Raises ValueError for a bad address or a non-loopback one
        without ``allow_remote``, OSError when it cannot listen, and
        RuntimeError if a worker already runs.
        """
        path = None if flush is None else os.path.abspath(os.fspath(flush))
        return self._c.start_worker(flush=path, interval=float(interval), live=live,
                                    allow_remote=bool(allow_remote), meta=meta)

    def stop_worker(self) -> None:
        """Stop the worker thread, if one runs, and wait for it; returns None."""
        self._c.stop_worker()

    def print_stats(
        self,
        stream: Optional[IO[str]] = None,
        output_unit: Optional[float] = None,
        stripzeros: bool = False,
        rich: bool = False,
        summarize: bool = False,
        sort: bool = False,
        *,
        details: bool = True,
        show_max: bool = False,
        tasks: bool = False,
    ) -> None:
        """Write the text report of :meth:`get_stats` to ``stream`` (default stdout); returns None."""
        self.get_stats().print(stream=stream, output_unit=output_unit,
                               stripzeros=stripzeros, details=details,
                               summarize=summarize, sort=sort, rich=rich,
                               show_max=show_max, tasks=tasks)

    def report(self, **kwargs: Any) -> str:
        """Return the text :meth:`print_stats` would write; takes the same keywords."""
        buf = io.StringIO()
        self.print_stats(stream=buf, **kwargs)
        return buf.getvalue()
