"""What the wait hub queues: one waiter per trigger, and its jobs (up to 50 ids, or one brand)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
from typing import Protocol

from airflow_provider_bloom.logic.records import BrandEvent, BrandRecord, slim_brand
from airflow_provider_bloom.logic.waiting import PendingImages, wait_window


class WaitOptions(Protocol):
    """How one wait is paced (a Bloom trigger has these attributes)."""

    #: Absolute end of the wait (epoch seconds).
    deadline: float
    #: Seconds Bloom may hold one long-poll (1..295).
    poll_timeout: int
    #: First pause before asking again after a transient error (seconds).
    retry_delay: float


class Waiter:
    """One trigger's wait inside the hub."""

    def __init__(self, options: WaitOptions) -> None:
        self.deadline = options.deadline
        self.poll_timeout = options.poll_timeout
        self.retry_delay = options.retry_delay
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finish(self, error: BaseException | None = None) -> None:
        if self.future.done():
            return
        if error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(error)

    def poll_window(self, now_epoch: float) -> int:
        return wait_window(self.deadline - now_epoch, self.poll_timeout)


class ImageWaiter(Waiter):
    def __init__(self, state: PendingImages, options: WaitOptions, include_urls: bool) -> None:
        super().__init__(options)
        self.state = state
        self.include_urls = include_urls


class BrandWaiter(Waiter):
    def __init__(self, brand_id: str, options: WaitOptions) -> None:
        super().__init__(options)
        self.brand_id = brand_id
        self.brand: BrandRecord = slim_brand({"id": brand_id})
        self.event: BrandEvent | None = None


sequence = itertools.count()


@dataclasses.dataclass(eq=False)
class Job:
    """A unit of the queue: up to 50 ids of one image waiter, or one brand waiter."""

    waiter: Waiter
    ids: list[str] = dataclasses.field(default_factory=list)
    order: int = dataclasses.field(default_factory=lambda: next(sequence))
    not_before: float = 0.0  # monotonic; set after a transient error
    checked_at: float = -math.inf  # monotonic; last answer about these ids
    failures: int = 0
    solo: bool = False  # after a permanent error in a mixed sweep: asked alone, to find whose it is
    busy: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def is_brand(self) -> bool:
        return isinstance(self.waiter, BrandWaiter)
