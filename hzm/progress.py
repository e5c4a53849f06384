"""Progress lines for long work: rows and bytes done, elapsed time and rate.

    progress = Progress("backup", write)          # write: a command's stdout.write, or None
    progress.update(rows=1200, bytes=4_500_000)   # a line when INTERVAL has passed
    progress.finish()                             # the last line, always

A line says what is done so far, as in
`backup: 1,200 rows, 4.3 MB, 12.0 s, 100 rows/s, 366.2 KB/s` (with `of <total>` and a
percentage when the total is known). At most one line per INTERVAL seconds, however
often update() is called, and none at all with write=None: commands pass None at
`-v 0`. The clock is injectable so that tests never wait for one.
"""

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# Seconds between two lines (HZM_PROGRESS_INTERVAL; 0: a line at every step of the work).
INTERVAL = float(os.environ.get("HZM_PROGRESS_INTERVAL") or 2.0)

Write = Callable[[str], object]

# Where work that runs below a command (a migration operation) reports: set by the
# command for its run (reporting()), print() when no command set it.
_reporter: ContextVar[Write | None] = ContextVar("hzm_progress_reporter", default=print)


def current_writer() -> Write | None:
    """Where progress of work inside the current command goes (None: nowhere)."""
    return _reporter.get()


@contextmanager
def reporting(write: Write | None) -> Iterator[None]:
    """Send progress of the work run in the block to `write` (None: keep it quiet)."""
    token = _reporter.set(write)
    try:
        yield
    finally:
        _reporter.reset(token)


def for_verbosity(write: Write, verbosity: int) -> Write | None:
    """`write` at verbosity 1 and above, None (silence) at 0."""
    return write if verbosity >= 1 else None


def size(amount: float) -> str:
    """Bytes for people: 950 B, 12.3 KB, 4.5 MB, 1.2 GB (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(amount) < 1024 or unit == "GB":
            return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class Progress:
    """Periodic progress lines of one piece of work (see the module's docstring)."""

    def __init__(
        self,
        label: str,
        write: Write | None,
        *,
        rows_total: int | None = None,
        bytes_total: int | None = None,
        unit: str = "rows",
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.write = write
        self.rows_total = rows_total
        self.bytes_total = bytes_total
        self.unit = unit
        self.interval = INTERVAL if interval is None else interval
        self.clock = clock
        self.started = self.last = clock()
        self.rows: int | None = None
        self.bytes: int | None = None
        self.lines = 0

    def update(self, *, rows: int | None = None, bytes: int | None = None, note: str = "") -> None:
        """Record the work done so far (totals, not increments); a line if one is due."""
        if rows is not None:
            self.rows = rows
        if bytes is not None:
            self.bytes = bytes
        if self.clock() - self.last >= self.interval:
            self._line(note)

    def finish(self, note: str = "") -> None:
        """The closing line: what was done in all, and how fast."""
        self._line(note)

    def line(self, note: str = "") -> str:
        """The progress line as it stands now."""
        elapsed = max(self.clock() - self.started, 0.0)
        parts = []
        if self.rows is not None:
            of = f" of {self.rows_total:,}" if self.rows_total else ""
            parts.append(f"{self.rows:,}{of} {self.unit}{_percent(self.rows, self.rows_total)}")
        if self.bytes is not None:
            of = f" of {size(self.bytes_total)}" if self.bytes_total else ""
            parts.append(f"{size(self.bytes)}{of}{_percent(self.bytes, self.bytes_total)}")
        parts.append(f"{elapsed:.1f} s")
        if elapsed > 0:
            if self.rows is not None:
                parts.append(f"{self.rows / elapsed:,.0f} {self.unit}/s")
            if self.bytes is not None:
                parts.append(f"{size(self.bytes / elapsed)}/s")
        text = f"{self.label}: {', '.join(parts)}"
        return f"{text} ({note})" if note else text

    def _line(self, note: str) -> None:
        self.last = self.clock()
        if self.write is not None:
            self.write(self.line(note))
            self.lines += 1


def _percent(done: int, total: int | None) -> str:
    return f" ({100 * done / total:.0f}%)" if total else ""
