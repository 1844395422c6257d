"""The progress line of a running batch: done/total, the rate achieved against the rate given, time left."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: Seconds between two progress lines.
PROGRESS_EVERY = 10.0
#: The rate in a progress line is measured over this many seconds.
RATE_WINDOW = 60.0


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class Progress:
    """Counts of a submission in progress; :meth:`due` says when to log :meth:`line` (thread-safe enough:
    counters are only incremented, and a line is a snapshot)."""

    total: int
    given_per_minute: int
    already: int = 0  # rows done by an earlier try
    clock: Callable[[], float] = time.monotonic
    submitted: int = 0
    rejected: int = 0
    uncertain: int = 0
    rate_limited: int = 0
    #: Images known to have completed / failed (the caller updates them from what it has read).
    completed: int = 0
    failed: int = 0
    started: float = field(default=0.0)
    _last: float = field(default=0.0)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _samples: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        self.started = self._last = self.clock()

    def due(self, every: float = PROGRESS_EVERY) -> bool:
        """True once every ``every`` seconds, to one caller (several threads ask)."""
        with self._lock:
            now = self.clock()
            if now - self._last >= every:
                self._last = now
                return True
            return False

    def per_minute(self) -> float:
        """Requests a minute over the last minute (over the whole run before a minute has passed, then
        the opening burst no longer flatters it)."""
        now, done = self.clock(), self.submitted + self.rejected + self.uncertain
        self._samples.append((now, done))
        while len(self._samples) > 1 and self._samples[1][0] <= now - RATE_WINDOW:
            self._samples.popleft()
        then, before = self._samples[0] if now - self._samples[0][0] >= RATE_WINDOW else (self.started, 0)
        return 60.0 * (done - before) / (now - then) if now > then else 0.0

    def line(self) -> str:
        done = self.already + self.submitted + self.rejected + self.uncertain
        rate = self.per_minute()
        left = self.total - done
        eta = duration(60.0 * left / rate) if rate > 0 and left > 0 else ("0s" if left <= 0 else "?")
        pct = 100.0 * done / self.total if self.total else 100.0
        return (
            f"Submitted {done:,}/{self.total:,} rows ({pct:.0f}%): {self.rejected} refused, "
            f"{self.uncertain} uncertain, {self.rate_limited} answered 429; images so far: "
            f"{self.completed:,} completed, {self.failed:,} failed; "
            f"{rate:.0f}/min of {self.given_per_minute}/min given "
            f"({rate / self.given_per_minute:.0%}); about {eta} left"
        )
