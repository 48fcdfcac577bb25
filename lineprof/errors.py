"""The one exception type the front end raises for problems a user can fix."""

from __future__ import annotations

__all__ = ["LineprofError"]


class LineprofError(Exception):
    """A user-facing error whose ``str()`` is one line, ready to print.

    The command-line tools print it as ``lineprof: <message>`` and exit 1,
    without a traceback.
    """
