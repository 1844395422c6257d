"""What both Bloom triggers share: their wait options, their serialization and their one event.

A subclass names its own arguments (:meth:`BloomWaitTrigger.arguments`), waits through the hub of its
credential (:meth:`BloomWaitTrigger.wait_in`) and says what its event looks like after an error
(:meth:`BloomWaitTrigger.error_event`). Everything else is here: checked options, a ``serialize()``
of primitives only (never the key: the connection is looked up again in the triggerer), one event per
run, and an event held back until ``not_before``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_bloom.client.spec import MAX_WAIT_SECONDS
from airflow_provider_bloom.exceptions import BloomError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.logic.records import BrandEvent, ImagesEvent
from airflow_provider_bloom.logic.waiting import check_epoch, check_poll_timeout, check_retry_delay
from airflow_provider_bloom.triggers._gc import freeze_startup_heap
from airflow_provider_bloom.triggers.connections import connection_settings
from airflow_provider_bloom.triggers.hub import WaitHub, hub_for


class BloomWaitTrigger(BaseTrigger):
    """A trigger that waits for Bloom through the wait hub and fires exactly one event.

    :param deadline: absolute end of the wait, as epoch seconds (UTC); absolute, so a trigger restarted
        on another triggerer keeps it.
    :param bloom_conn_id: the Bloom connection (looked up asynchronously; the key is never serialized).
    :param poll_timeout: seconds each long-poll may be held by Bloom (1..295).
    :param retry_delay: first pause before asking again after a transient error (5xx, network);
        doubles up to 30 s, with jitter; a ``Retry-After`` from Bloom wins. A 429 slows the whole
        hub instead.
    :param not_before: epoch seconds before which the event is not fired (the operator sets it a few
        seconds after it deferred, so that Airflow's scheduler has handled the deferring worker's
        exit before the task resumes: see "Short waits stay in the worker" in docs/howto/generate.md).
    """

    def __init__(
        self,
        *,
        deadline: float,
        bloom_conn_id: str = BloomHook.default_conn_name,
        poll_timeout: int = MAX_WAIT_SECONDS,
        retry_delay: float = 1.0,
        not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.deadline = float(check_epoch("deadline", deadline))  # type: ignore[arg-type]
        self.bloom_conn_id = str(bloom_conn_id)
        self.poll_timeout = check_poll_timeout(poll_timeout)
        self.retry_delay = check_retry_delay(retry_delay)
        self.not_before = check_epoch("not_before", not_before, optional=True)

    def arguments(self) -> dict[str, Any]:
        """This trigger's own constructor arguments (primitives only)."""
        raise NotImplementedError

    async def wait_in(self, hub: WaitHub) -> ImagesEvent | BrandEvent:
        """Wait through ``hub`` and return the event payload."""
        raise NotImplementedError

    def error_event(self, error: BaseException) -> ImagesEvent | BrandEvent:
        """The ``error`` event when the wait ended with ``error``."""
        raise NotImplementedError

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self.arguments(),
                "deadline": self.deadline,
                "bloom_conn_id": self.bloom_conn_id,
                "poll_timeout": self.poll_timeout,
                "retry_delay": self.retry_delay,
                "not_before": self.not_before,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self.wait())

    async def wait(self) -> ImagesEvent | BrandEvent:
        """Wait through the hub of this trigger's credential and return the one event payload."""
        freeze_startup_heap()  # once per process: a burst of triggers then never sets off a ~100 ms full GC
        try:
            settings = await connection_settings(self.bloom_conn_id)
            async with hub_for(settings) as hub:
                event = await self.wait_in(hub)
        except BloomError as exc:
            self.log.warning("Waiting for Bloom failed (%r): %s", self, exc)
            event = self.error_event(exc)
        except Exception as exc:  # one error event, never a crashed trigger
            self.log.exception("Unexpected error while waiting for Bloom (%r)", self)
            event = self.error_event(exc)
        await hold_until(self.not_before)
        return event


async def hold_until(not_before: float | None) -> None:
    """Sleep until ``not_before`` (epoch seconds), so that an event never fires too soon after deferral."""
    if not_before is not None:
        left = not_before - time.time()
        if left > 0:
            await asyncio.sleep(left)
