"""Find what a paid request created when its answer was lost: the looking, over the hook.

:class:`Reconciler` reads Bloom's lists through :class:`~airflow_provider_bloom.hooks.bloom.BloomHook`
and Bloom's clock off the answers to those lookups; what counts as a match is decided in
:mod:`airflow_provider_bloom.logic.reconcile`, without I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_bloom.exceptions import BloomError
from airflow_provider_bloom.logic.reconcile import (
    DEFAULT_RECONCILE_TIMEOUT,
    DEFAULT_TOLERANCE,
    PAGE_SIZE,
    Attempt,
    Decision,
    ImageQuery,
    IncompleteListing,
    ServerTime,
    bloom_window,
    brand_candidates,
    decide_brands,
    decide_images,
    fetch_until_window,
    image_candidates,
    limited_pages,
    parse_http_date,
    uncertain,
)

if TYPE_CHECKING:
    from airflow_provider_bloom.client.core import Exchange
    from airflow_provider_bloom.hooks.bloom import BloomHook

#: Pauses between looks while nothing (or only part of a group) is listed.
LOOK_INTERVALS = (1.0, 2.0, 4.0)
#: A certain match is adopted only if a second look this much later shows the same.
CONFIRM_DELAY = 1.0


@dataclass
class Reconciler:
    """Look in Bloom's lists for what a lost paid request created (sync; used by the operators).

    Bloom's ``Date`` header is read from the answers to the lookups themselves (the hook's
    :meth:`~airflow_provider_bloom.hooks.bloom.BloomHook.observe_answers`, while they run).
    """

    hook: BloomHook
    log: Any
    _: KW_ONLY
    timeout: float = DEFAULT_RECONCILE_TIMEOUT
    tolerance: float = DEFAULT_TOLERANCE
    sleep: Callable[[float], None] = time.sleep
    _server: ServerTime | None = field(default=None, init=False)
    _warned: bool = field(default=False, init=False)

    # -- Bloom's clock -------------------------------------------------------------------
    def _on_answer(self, exchange: Exchange) -> None:
        date = parse_http_date(exchange.date)
        if date is not None:
            self._server = ServerTime(date, exchange.sent, exchange.received)

    def _window(self, attempt: Attempt) -> tuple[float, float | None]:
        server = self._server
        if server is None:  # Bloom sent no Date header: fall back to this machine's clock
            now_wall, now_mono = time.time(), time.monotonic()
            server = ServerTime(now_wall, now_mono, now_mono)
            if not self._warned:
                self._warned = True
                self.log.warning("Bloom sent no Date header; using this machine's clock for the time window")
        return bloom_window(attempt, server, self.tolerance)

    # -- looking ---------------------------------------------------------------------------
    def _look(
        self,
        attempt: Attempt,
        fetch: Callable[[], Iterator[Mapping[str, Any]]],
        decide: Callable[[list[Mapping[str, Any]], tuple[float, float | None]], Decision],
    ) -> tuple[Decision, tuple[float, float | None]]:
        with self.hook.observe_answers(self._on_answer):
            records = fetch_until_window(fetch, lambda: self._window(attempt)[0])
        window = self._window(attempt)
        return decide(records, window), window

    def find(
        self,
        operation: str,
        lost: BaseException,
        attempt: Attempt,
        fetch: Callable[[], Iterator[Mapping[str, Any]]],
        decide: Callable[[list[Mapping[str, Any]], tuple[float, float | None]], Decision],
    ) -> Decision:
        """Look until a certain match is confirmed, it turns out uncertain, or ``timeout`` passes."""
        started = time.monotonic()
        intervals = iter(LOOK_INTERVALS)
        interval = 0.0
        previous: Decision | None = None
        while True:
            try:
                decision, window = self._look(attempt, fetch, decide)
            except (BloomError, IncompleteListing) as exc:
                # Never let a failed lookup turn into an Airflow retry (that would post again).
                failed = Decision("none", [], f"looking through Bloom's list failed: {exc}")
                raise uncertain(operation, lost, failed, None, time.monotonic() - started) from exc
            elapsed = time.monotonic() - started
            if decision.outcome == "match":
                if previous is not None and previous.outcome == "match" and previous.ids == decision.ids:
                    return decision
                pause = CONFIRM_DELAY  # a second look must agree: Bloom's list may still be filling
            elif decision.outcome == "ambiguous":  # more looks can only find more
                raise uncertain(operation, lost, decision, window, elapsed)
            else:
                interval = next(intervals, interval)
                pause = interval
            if elapsed + pause > self.timeout:
                if decision.outcome == "match":
                    decision = Decision(
                        "partial", decision.records, "a match was seen once but not confirmed"
                    )
                raise uncertain(operation, lost, decision, window, elapsed)
            self.log.info(
                "Looking again for what the lost %s created in %.1fs (%s)",
                operation,
                pause,
                decision.reason or "confirming the match",
            )
            previous = decision
            self.sleep(pause)

    # -- operations ------------------------------------------------------------------------
    def images(self, query: ImageQuery, lost: BaseException, attempt: Attempt) -> Decision:
        """The records a lost generate/edit created (one group of ``query.count``), or raise."""

        def fetch() -> Iterator[Mapping[str, Any]]:
            return self.hook.paginate(
                limited_pages(self.hook.list_images),
                "images",
                brand_session_id=query.brand_session_id,
                action_type=query.action_type,
                limit=PAGE_SIZE,
            )

        def decide(records: list[Mapping[str, Any]], window: tuple[float, float | None]) -> Decision:
            return decide_images(image_candidates(records, query, window), query)

        return self.find(query.operation, lost, attempt, fetch, decide)

    def brand(self, url: str, workspace_id: str | None, lost: BaseException, attempt: Attempt) -> Decision:
        """The brand a lost ``POST /brands`` created (same URL, created in the window), or raise."""

        def fetch() -> Iterator[Mapping[str, Any]]:
            return self.hook.paginate(
                limited_pages(self.hook.list_brands), "brands", workspace_id=workspace_id, limit=PAGE_SIZE
            )

        def decide(records: list[Mapping[str, Any]], window: tuple[float, float | None]) -> Decision:
            return decide_brands(brand_candidates(records, url, workspace_id, window))

        return self.find("brands.create", lost, attempt, fetch, decide)
