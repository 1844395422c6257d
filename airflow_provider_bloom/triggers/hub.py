"""The wait hub: one per triggerer process and Bloom credential, shared by every Bloom trigger in it.

A :class:`~airflow_provider_bloom.triggers.images.BloomImagesTrigger` or
:class:`~airflow_provider_bloom.triggers.brands.BloomBrandTrigger` does not send requests itself: it
hands its ids to the hub of its credential (:func:`hub_for`) and awaits its own result. The hub
decides what is sent, on one shared :class:`~airflow_provider_bloom.client.transport.AsyncBloomClient`,
within one request budget.

Keys. A hub is keyed by the event loop, Bloom's base URL, a one-way fingerprint of the key (or of the
OAuth client) and the budget; two credentials never share a hub, a request or a budget, and no
secret appears in a hub's name, log lines or repr. It is created when the first trigger of its
credential arrives and closed (client included) when the last one leaves. Nothing is shared between
processes: each triggerer has its own hubs, so a trigger that moves to another triggerer just starts
over there.

Budget. Everything a hub sends goes through a :class:`~airflow_provider_bloom.logic.pacing.TokenBucket` of
``wait_requests_per_minute`` (connection extra, default 60 of Bloom's 120, burst 6), which leaves the
rest of the key's limit to the workers' submissions. A 429 slows the whole hub down once (pause for
``Retry-After`` or a few jittered seconds, then half rate for a minute); the requests it answered are
put back in the queue, nothing fails. Several triggerers on one key each have their own hub: give each
``120 / (triggerers + 1)`` or less (e.g. 40 with two triggerers) so that submissions keep room.

Strategy. Bloom's ``GET /images?ids=...&wait=true`` holds until *every* listed id is terminal, so a
long-poll of mixed ids waits for the slowest of them. The hub therefore uses two kinds of request:

* a **long-poll** per group (one trigger's ids, at most 50): the event fires within milliseconds of
  the last image turning terminal, and a wait costs one request per long-poll window (up to 295 s).
  A group gets one when the bucket holds a token beyond what one sweep round of the other queued ids
  needs, and a full group (50 ids) always does: no sweep could pack anything with it, so a long-poll
  costs the same request and answers the moment its images settle. One trigger alone (the common case)
  is always served this way, as before the hub, however many groups its ids make.
* a **sweep** when the budget cannot cover a long-poll per group: ``GET /images?ids=<50 ids>`` without
  ``wait``, packing the queued groups' ids least-recently-checked first, as fast as the budget allows
  but no id more than once a second. Each answer settles every group it covers whose images are all
  terminal.

With the defaults (60 requests/min), a round over P queued ids costs ceil(P/50) requests, so each id
is checked every ceil(P/50) seconds: 2 s for 100 waiting triggers, 20 s for 1,000. The figures
measured by ``bench/bench_hub.py`` are in docs/benchmarks.md (requests, 429s, delay from the last terminal
status to the event, the longest event-loop stall, memory).

The decisions about a wait (pending ids, missing ids) are the I/O-free ones of
:mod:`airflow_provider_bloom.logic.waiting`, shared with the sync hook and the sensor's poke mode; which
errors are transient and how long to back off are the one retry policy of
:mod:`airflow_provider_bloom.client.retry`, which the client reads too.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow_provider_bloom.client.retry import backoff, is_transient, retry_after
from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.client.spec import MAX_IDS_PER_CALL
from airflow_provider_bloom.exceptions import BloomError, BloomImagesMissingError, BloomRateLimitError
from airflow_provider_bloom.logic.pacing import TokenBucket
from airflow_provider_bloom.logic.records import BrandEvent, slim_brand
from airflow_provider_bloom.logic.waiting import PendingImages, brand_event, brand_timeout_event, error_fields
from airflow_provider_bloom.triggers._waiters import (
    BrandWaiter,
    ImageWaiter,
    Job,
    Waiter,
    WaitOptions,
    sequence,
)

if TYPE_CHECKING:
    from airflow_provider_bloom.client.transport import AsyncBloomClient

log = logging.getLogger(__name__)

__all__ = ["WaitHub", "WaitOptions", "active_hubs", "hub_for"]

#: Long-polls held at once by one hub (the connection pool is sized for them).
MAX_LONG_POLLS = 100
#: No id is checked by a sweep more often than this (seconds).
MIN_RECHECK_SECONDS = 1.0


# --------------------------------------------------------------------------- the hub
class WaitHub:
    """Every Bloom wait of one credential in one process: one client, one budget, one queue.

    Use :func:`hub_for`; then :meth:`wait_images` or :meth:`wait_brand` from a trigger.
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_recheck: float = MIN_RECHECK_SECONDS,
        max_long_polls: int = MAX_LONG_POLLS,
    ) -> None:
        # The hub paces and retries itself: the client sends each request once.
        self.settings = dataclasses.replace(settings, max_retries=0)
        self.name = f"{urlparse(settings.base_url).netloc}#{settings.fingerprint}"
        self.bucket = TokenBucket(settings.wait_requests_per_minute, clock=clock)
        self.clock = clock
        self.min_recheck = min_recheck
        self.max_long_polls = max_long_polls
        self.users = 0
        self.stats: dict[str, int] = dict.fromkeys(
            ("requests", "long_polls", "sweeps", "rate_limited", "errors"), 0
        )
        self._jobs: list[Job] = []
        self._client: AsyncBloomClient | None = None
        self._client_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._long_polls = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"<WaitHub {self.name} users={self.users} queued={len(self._jobs)} {self.bucket!r}>"

    # -- public: what triggers call -----------------------------------------------------------
    async def wait_images(
        self, state: PendingImages, options: WaitOptions, *, include_urls: bool = False
    ) -> None:
        """Wait until every id of ``state`` is terminal, or ``options.deadline`` (epoch seconds) passes.

        ``state`` is updated in place. Raises the error that ended this wait (a permanent Bloom
        error, or ids that Bloom did not return); returns normally on completion and at the deadline.
        """
        if state.done:
            return
        waiter = ImageWaiter(state, options, include_urls)
        jobs = [Job(waiter, ids=chunk) for chunk in state.batches()]
        await self._wait(waiter, jobs)

    async def wait_brand(self, brand_id: str, options: WaitOptions) -> BrandEvent:
        """Wait until the brand's onboarding ends or ``options.deadline`` passes; return the event payload."""
        waiter = BrandWaiter(brand_id, options)
        try:
            await self._wait(waiter, [Job(waiter)])
        except BloomError as exc:
            return {"brand": waiter.brand, **error_fields(exc)}
        return waiter.event or brand_timeout_event(waiter.brand)

    async def _wait(self, waiter: Waiter, jobs: list[Job]) -> None:
        self._jobs.extend(jobs)
        self._start()
        try:
            left = waiter.deadline - time.time()
            if left > 0:
                await asyncio.wait_for(asyncio.shield(waiter.future), timeout=left)
        except asyncio.TimeoutError:
            pass
        finally:
            self._leave(waiter)
        if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception():
            raise waiter.future.exception()  # type: ignore[misc]

    # -- lifecycle ---------------------------------------------------------------------------
    def _start(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = _hub_task(self._run(), name=f"bloom-hub {self.name}")
        self._wake.set()

    def _leave(self, waiter: Waiter) -> None:
        """Forget a waiter: its queued jobs go, its own long-polls are cancelled."""
        for job in [j for j in self._jobs if j.waiter is waiter]:
            self._jobs.remove(job)
            if job.task is not None and not job.task.done():
                job.task.cancel()
        if not waiter.future.done():
            waiter.future.cancel()
        elif not waiter.future.cancelled():
            waiter.future.exception()  # retrieved here, so asyncio never warns about it

    async def aclose(self) -> None:
        """Stop the hub: cancel what is in flight and close the client."""
        self._closed = True
        tasks = [t for t in (self._runner, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        log.info("Bloom wait hub %s closed: %s", self.name, self.stats)

    async def _get_client(self) -> AsyncBloomClient:
        async with self._client_lock:
            if self._client is None:
                # Importing and building the client (its SSL context) takes tens of ms: off the event loop.
                self._client = await asyncio.to_thread(_make_client, self.settings, self.max_long_polls)
                log.info("Bloom wait hub %s started (%s)", self.name, self.bucket)
            return self._client

    # -- the scheduler ------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._schedule()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must end every wait with an error, not hang them
            log.exception("The Bloom wait hub %s stopped", self.name)
            for job in list(self._jobs):
                self._finish(job.waiter, exc)

    async def _schedule(self) -> None:
        while not self._closed:
            now = self.clock()
            action, jobs, idle = self._next_action(now)
            if action is None:
                await self._sleep(idle)
                continue
            delay = self.bucket.try_take()
            if delay > 0:
                await self._sleep(delay)
                continue
            for job in jobs:
                job.busy = True
            coro = self._long_poll(jobs[0]) if action == "long" else self._sweep(jobs)
            task = asyncio.get_running_loop().create_task(coro)
            if action == "long":
                jobs[0].task = task
                self._long_polls += 1
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            await asyncio.sleep(0)  # let the request start before the next decision

    async def _sleep(self, seconds: float | None) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    def _next_action(self, now: float) -> tuple[str | None, list[Job], float | None]:
        """Decide what the next token buys: ``("long", [job])``, ``("sweep", jobs)`` or nothing yet."""
        waiting = [j for j in self._jobs if not j.busy]
        ready = [j for j in waiting if j.not_before <= now]
        if not ready:
            later = [j.not_before - now for j in waiting]
            return None, [], (min(later) if later else None)
        brands = [j for j in ready if j.is_brand]
        if brands:
            return "long", [brands[0]], None
        if self._long_polls < self.max_long_polls:
            first = min(ready, key=lambda j: j.order)
            others = sum(len(j.ids) for j in ready) - len(first.ids)
            if self.bucket.available() - 1 >= math.ceil(others / MAX_IDS_PER_CALL):
                return "long", [first], None
            # A full group fills a sweep alone: a long-poll costs the same request and holds until it settles.
            full = [j for j in ready if len(j.ids) >= MAX_IDS_PER_CALL]
            if full:
                return "long", [min(full, key=lambda j: j.order)], None
        due = sorted((j for j in ready if j.checked_at <= now - self.min_recheck), key=lambda j: j.checked_at)
        if not due:
            return None, [], min(j.checked_at + self.min_recheck for j in ready) - now
        if due[0].solo:
            return "sweep", [due[0]], None
        batch: list[Job] = []
        size = 0
        for job in due:
            if job.solo or size + len(job.ids) > MAX_IDS_PER_CALL:
                continue
            batch.append(job)
            size += len(job.ids)
        return "sweep", batch, None

    # -- requests -----------------------------------------------------------------------------
    async def _long_poll(self, job: Job) -> None:
        waiter = job.waiter
        try:
            client = await self._get_client()
            self.stats["requests"] += 1
            self.stats["long_polls"] += 1
            window = waiter.poll_window(time.time())
            if isinstance(waiter, BrandWaiter):
                answer = await client.get_brand(waiter.brand_id, wait=True, timeout=window)
                self._settle_brand(job, answer)
            else:
                assert isinstance(waiter, ImageWaiter)
                page = await client.list_images(
                    ids=job.ids, wait=True, timeout=window, include_urls=waiter.include_urls or None
                )
                self._settle_images([job], page)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - every error is routed to its waiter(s)
            self._failed([job], exc)
        finally:
            self._long_polls -= 1
            job.busy, job.task = False, None
            self._wake.set()

    async def _sweep(self, jobs: list[Job]) -> None:
        ids = [i for job in jobs for i in job.ids]
        include_urls = any(isinstance(j.waiter, ImageWaiter) and j.waiter.include_urls for j in jobs)
        try:
            client = await self._get_client()
            self.stats["requests"] += 1
            self.stats["sweeps"] += 1
            page = await client.list_images(ids=ids, include_urls=include_urls or None)
            self._settle_images(jobs, page)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001
            self._failed(jobs, exc)
        finally:
            for job in jobs:
                job.busy = False
            self._wake.set()

    # -- answers ------------------------------------------------------------------------------
    def _settle_images(self, jobs: list[Job], page: dict[str, Any]) -> None:
        now = self.clock()
        for job in jobs:
            if job not in self._jobs:
                continue  # its trigger left while the request was in flight
            waiter = job.waiter
            assert isinstance(waiter, ImageWaiter)
            job.checked_at, job.failures, job.solo = now, 0, False
            try:
                waiter.state.apply(job.ids, page)
            except BloomImagesMissingError as exc:
                self._finish(waiter, exc)
                continue
            job.ids = [i for i in job.ids if i in waiter.state.pending]
            if not job.ids:
                self._jobs.remove(job)
            else:
                job.order = next(sequence)  # back of the queue for the next long-poll
            if waiter.state.done:
                self._finish(waiter)

    def _settle_brand(self, job: Job, answer: dict[str, Any]) -> None:
        waiter = job.waiter
        assert isinstance(waiter, BrandWaiter)
        if job not in self._jobs:
            return  # its trigger left while the request was in flight
        waiter.brand = slim_brand(answer)
        job.failures = 0
        job.order = next(sequence)
        event = brand_event(answer)
        if event is not None:
            waiter.event = event
            self._finish(waiter)

    def _failed(self, jobs: list[Job], exc: BaseException) -> None:
        jobs = [j for j in jobs if j in self._jobs]
        if isinstance(exc, BloomRateLimitError):
            self.stats["rate_limited"] += 1
            if self.bucket.penalize(exc.retry_after):
                log.warning(
                    "Bloom answered 429 to the wait hub %s: slowing down (%s)", self.name, exc.retry_after
                )
            return  # the jobs stay queued; nothing was done by Bloom
        self.stats["errors"] += 1
        waiters = {id(j.waiter): j.waiter for j in jobs}
        if not is_transient(exc):
            if len(waiters) == 1:
                for waiter in waiters.values():
                    self._finish(waiter, exc)
                return
            for job in jobs:  # whose error is it? ask again for each trigger alone
                job.solo = True
            log.warning("A Bloom sweep of %d waits failed (%s); asking for each alone", len(waiters), exc)
            return
        now = self.clock()
        for job in jobs:
            job.failures += 1
            job.not_before = now + backoff(
                job.failures,
                base=job.waiter.retry_delay,
                retry_after=retry_after(exc),
                left=job.waiter.deadline - time.time(),
            )
        log.warning("Transient error in the Bloom wait hub %s (%s); asking again later", self.name, exc)

    def _finish(self, waiter: Waiter, error: BaseException | None = None) -> None:
        for job in [j for j in self._jobs if j.waiter is waiter]:
            self._jobs.remove(job)
        waiter.finish(error)


def _hub_task(coro: Any, name: str | None = None) -> asyncio.Task[Any]:
    """A task of the hub's own, outside the log context of the trigger whose call started it.

    Airflow's triggerer writes a log line to the file of the trigger id bound in its context, and a
    line for a trigger that has already ended opens that file again, emptying it: the hub (shared by
    every trigger, and outliving the one that started it) logs to the triggerer's own log instead.
    The long-polls and sweeps the runner starts inherit its context."""
    return contextvars.Context().run(asyncio.get_running_loop().create_task, coro, name=name)


def _make_client(settings: ClientSettings, max_long_polls: int) -> AsyncBloomClient:
    from airflow_provider_bloom.client.transport import AsyncBloomClient

    return AsyncBloomClient(settings, max_connections=max_long_polls + 10)


# --------------------------------------------------------------------------- registry
_hubs: dict[tuple[int, str, str, int], WaitHub] = {}


@asynccontextmanager
async def hub_for(settings: ClientSettings) -> AsyncIterator[WaitHub]:
    """The hub of this credential in this process (event loop); closed when its last user leaves."""
    key = (
        id(asyncio.get_running_loop()),
        settings.base_url,
        settings.fingerprint,
        settings.wait_requests_per_minute,
    )
    hub = _hubs.get(key)
    if hub is None:
        hub = _hubs[key] = WaitHub(settings)
    hub.users += 1
    try:
        yield hub
    finally:
        hub.users -= 1
        if hub.users == 0:
            if _hubs.get(key) is hub:
                del _hubs[key]
            await _hub_task(hub.aclose())  # its last lines are the hub's, not this trigger's


def active_hubs() -> list[WaitHub]:
    """The hubs alive in this process (for tests and diagnostics)."""
    return list(_hubs.values())
