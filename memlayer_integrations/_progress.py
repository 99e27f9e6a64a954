"""Progress of long operations, reported only when the caller asks.

A library must not print. Long operations (``remember_many`` over many items; the CLI's
long commands, such as ``memlayer reindex``) take ``progress=``:

* ``None`` or ``False`` (the default): nothing is reported;
* a callable: called as ``progress(done, total)`` after each step, from the calling thread;
* ``True``: a tqdm bar on stderr when tqdm is installed, else one plain line per step.

Example:
    >>> client.remember_many(items, user_id="u1", agent_id="bot", progress=True)  # doctest: +SKIP
    >>> client.remember_many(items, user_id="u1", agent_id="bot",
    ...                      progress=lambda done, total: print(f"{done}/{total}"))  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

__all__ = ["Progress", "ProgressArg", "ProgressCallback"]

#: Called with (done, total) after each step.
ProgressCallback = Callable[[int, int], None]
#: What a ``progress=`` argument accepts.
ProgressArg = bool | ProgressCallback | None


class Progress:
    """Counts ``total`` units of work done in steps, and reports each step as asked.

    Args:
        progress: what the caller passed as ``progress=`` (see the module docstring).
        total: how many units (memories, say) the whole operation handles.
        description: a short label for the bar or line ("remember_many").
        unit: what a unit is called on the bar.
        stream: where ``True`` writes (default: stderr).

    Use it as a context manager so a bar is closed however the operation ends.
    """

    def __init__(
        self,
        progress: ProgressArg,
        total: int,
        description: str,
        *,
        unit: str = "memory",
        stream: TextIO | None = None,
    ) -> None:
        if progress is not None and not isinstance(progress, bool) and not callable(progress):
            raise TypeError(
                f"progress must be True, False, None or a callable(done, total), not {type(progress).__name__}"
            )
        self.total = total
        self.done = 0
        self._description = description
        self._callback: ProgressCallback | None = progress if callable(progress) else None
        self._bar: Any = None
        self._lines: TextIO | None = None
        if progress is True:
            self._bar = self._tqdm(total, description, unit, stream)
            if self._bar is None:
                self._lines = stream or sys.stderr

    @staticmethod
    def _tqdm(total: int, description: str, unit: str, stream: TextIO | None) -> Any:
        try:
            from tqdm import tqdm  # type: ignore[import-untyped]
        except ImportError:
            return None
        return tqdm(total=total, desc=description, unit=unit, file=stream or sys.stderr)

    def advance(self, n: int) -> None:
        """Record ``n`` more units done and report it."""
        self.done += n
        if self._callback is not None:
            self._callback(self.done, self.total)
        elif self._bar is not None:
            self._bar.update(n)
        elif self._lines is not None:
            print(f"{self._description}: {self.done}/{self.total}", file=self._lines, flush=True)

    def update_to(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` units, as a ``progress(done, total)`` callback.

        For work that counts for itself and learns its total only once it starts (``memlayer
        reindex`` hands ``bar.update_to`` to the server's reindex): the total follows what
        it is told, and the bar or line moves to ``done``.
        """
        if total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()
        self.advance(done - self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
