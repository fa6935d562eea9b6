"""Progress of long work: a tqdm bar on a terminal, periodic plain lines in a log file or CI.

tqdm redraws its bar with carriage returns, which a log file keeps as one ever-growing line; off a TTY we print
instead a line such as ``collect babyai-go-to-red-ball: 120/1000 ep (12%), 14.2 ep/s, elapsed 0:08, ETA 1:02``
every ``interval`` seconds and once at the end. (tqdm has no such line mode, hence this small class.)
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["PlainProgress", "format_duration", "progress_bar"]

DEFAULT_INTERVAL_S = 30.0


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour), as tqdm writes durations."""
    seconds = int(max(seconds, 0) + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rate_and_eta(done: float, total: float | None, elapsed: float) -> tuple[float, float | None]:
    """Items per second and seconds left (None when the total is unknown or nothing is done yet)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if total is not None and rate > 0 else None
    return rate, eta


class PlainProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` as periodic plain lines (for logs and CI).

    Args:
        total: Items expected (None: unknown).
        desc: What is being done, at the start of each line.
        unit: Unit of the items (``"ep"``, ``"step"``).
        interval: Seconds between lines; the last line is printed by :meth:`close`.
        file: Stream for the lines (default stderr, like tqdm).

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with PlainProgress(4, "collect", "ep", file=out) as bar:
        ...     bar.update(4)
        >>> out.getvalue().split(":")[0]
        'collect'
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        interval: float = DEFAULT_INTERVAL_S,
        file: IO | None = None,
    ) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.file = file
        self.n = 0
        self.postfix = ""
        self._start = self._last = time.perf_counter()
        self._closed = False

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def line(self) -> str:
        """The current progress as one line."""
        elapsed = time.perf_counter() - self._start
        rate, eta = rate_and_eta(self.n, self.total, elapsed)
        done = f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        left = "" if eta is None else f", ETA {format_duration(eta)}"
        extra = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done}{share}, {rate:.3g} {self.unit}/s, elapsed {format_duration(elapsed)}{left}{extra}"

    def _print(self) -> None:
        print(self.line(), file=self.file or sys.stderr, flush=True)
        self._last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        """Counts ``n`` more items and prints a line when ``interval`` seconds passed since the last one."""
        self.n += n
        if time.perf_counter() - self._last >= self.interval:
            self._print()

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        """Extra ``key=value`` pairs shown at the end of the next lines (``refresh`` is tqdm's, unused)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Prints the final line (once)."""
        if not self._closed:
            self._closed = True
            self._print()


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True) -> Any:
    """A tqdm bar when stderr is a terminal, :class:`PlainProgress` lines when it is not, nothing when disabled.

    Args:
        total: Items expected.
        desc: Label.
        unit: Item unit.
        enabled: False: a silent bar (``tqdm(disable=True)``).

    Returns:
        An object with tqdm's ``update``, ``set_postfix`` and ``close`` that is also a context manager.
    """
    from tqdm.auto import tqdm

    if enabled and not sys.stderr.isatty():
        return PlainProgress(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled)
