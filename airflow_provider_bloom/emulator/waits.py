"""Long-poll waits on the event loop: one timer per waiting request, no thread, no polling.

A waiter sleeps until the moment its resources turn terminal (known from their
timestamps) or its deadline, whichever is first. Anything that changes state outside
the timeline (delete, reset, logo update) and server shutdown wake every waiter so it
re-reads the state and answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar


class Waitable(Protocol):
    def is_terminal(self, now: float) -> bool: ...

    def next_change(self) -> float: ...


W = TypeVar("W", bound=Waitable)

#: Sleep this much past a terminal time so the re-read surely sees the new status.
_SLACK = 0.0005


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class WaitHub:
    """The waiting requests of one emulator, all on its event loop."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._futures: set[asyncio.Future[None]] = set()
        self.closing = False

    @property
    def waiting(self) -> int:
        return len(self._futures)

    async def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; returns early on :meth:`wake_all` or shutdown."""
        if self.closing or seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(seconds, _resolve, future)
        self._futures.add(future)
        try:
            await future
        finally:
            handle.cancel()
            self._futures.discard(future)

    def wake_all(self) -> None:
        """Make every waiter re-read the state now (call on the hub's loop)."""
        for future in list(self._futures):
            _resolve(future)

    def close(self) -> None:
        """Server shutdown: every waiter answers with the current state at once."""
        self.closing = True
        self.wake_all()

    async def until_terminal(self, read: Callable[[], Sequence[W]], timeout: float) -> Sequence[W]:
        """Re-read ``read()`` until all its resources are terminal or ``timeout`` passes.

        ``read`` may raise (e.g. a 404 when the resource was deleted meanwhile).
        """
        deadline = self._clock() + timeout
        while True:
            resources = read()
            now = self._clock()
            pending = [r for r in resources if not r.is_terminal(now)]
            if not pending or now >= deadline or self.closing:
                return resources
            wake_at = min(max(r.next_change() for r in pending) + _SLACK, deadline)
            await self.sleep(wake_at - now)
