"""BloomBrandTrigger: wait in the triggerer until a brand's onboarding ends, without blocking the loop.

The trigger hands the brand to the wait hub of its credential (:mod:`airflow_provider_bloom.triggers.hub`),
which long-polls ``GET /brands/{id}?wait=true`` within the credential's request budget until the brand
is terminal (``ready``, ``logo_required``, ``failed``) or the absolute deadline passes. It fires exactly
one event ``{"status", "brand", "message"}``:

* ``success``: the brand is ``ready``;
* ``failed``: the brand ended ``failed`` or ``logo_required`` (the sensor decides what that means);
* ``timeout``: the deadline passed while the brand was still ``analyzing``;
* ``error``: a permanent Bloom error (the event also carries Bloom's ``code`` and ``permanent``),
  or something unexpected. Transient errors (429, 5xx, network) are asked again until the deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_bloom._spec import MAX_WAIT_SECONDS, check_uuid
from airflow_provider_bloom.exceptions import BloomError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.triggers.hub import connection_settings, hold_until, hub_for
from airflow_provider_bloom.waiting import (
    BRAND_RECORD_FIELDS,
    EVENT_STATUSES,
    check_epoch,
    check_poll_timeout,
    check_retry_delay,
    error_event,
    slim_brand,
)

#: Kept for imports of earlier versions.
BRAND_EVENT_STATUSES = EVENT_STATUSES
__all__ = ["BRAND_EVENT_STATUSES", "BRAND_RECORD_FIELDS", "BloomBrandTrigger", "slim_brand"]


class BloomBrandTrigger(BaseTrigger):
    """Fire once when a Bloom brand's onboarding ends or ``deadline`` (epoch seconds, UTC) passes.

    :param brand_id: the brand to watch.
    :param deadline: absolute end of the wait, as a UNIX timestamp (a restarted trigger keeps it).
    :param bloom_conn_id: the Bloom connection (looked up asynchronously; the key is never serialized).
    :param poll_timeout: seconds per long-poll (1-295).
    :param retry_delay: first pause before asking again after a transient error (5xx, network);
        doubles up to 30 s, with jitter. A 429 slows the whole hub instead.
    :param not_before: epoch seconds before which the event is not fired (see BloomImagesTrigger).
    """

    def __init__(
        self,
        brand_id: str,
        deadline: float,
        bloom_conn_id: str = BloomHook.default_conn_name,
        poll_timeout: int = MAX_WAIT_SECONDS,
        retry_delay: float = 1.0,
        not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.brand_id = check_uuid("brand_id", brand_id)
        self.deadline = float(check_epoch("deadline", deadline))  # type: ignore[arg-type]
        self.bloom_conn_id = str(bloom_conn_id)
        self.poll_timeout = check_poll_timeout(poll_timeout)
        self.retry_delay = check_retry_delay(retry_delay)
        self.not_before = check_epoch("not_before", not_before, optional=True)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "brand_id": self.brand_id,
                "deadline": self.deadline,
                "bloom_conn_id": self.bloom_conn_id,
                "poll_timeout": self.poll_timeout,
                "retry_delay": self.retry_delay,
                "not_before": self.not_before,
            },
        )

    def __repr__(self) -> str:
        name, conn = type(self).__name__, self.bloom_conn_id
        return f"<{name} brand={self.brand_id} conn={conn!r} deadline={self.deadline:.0f}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self.wait())

    async def wait(self) -> dict[str, Any]:
        """Wait through the hub and return the one event payload."""
        brand: dict[str, Any] = {"id": self.brand_id, "status": None}
        try:
            settings = await connection_settings(self.bloom_conn_id)
            async with hub_for(settings) as hub:
                event = await hub.wait_brand(
                    self.brand_id,
                    deadline=self.deadline,
                    poll_timeout=self.poll_timeout,
                    retry_delay=self.retry_delay,
                )
        except BloomError as exc:
            event = error_event({"brand": brand}, exc)
        except Exception as exc:  # one error event, never a crashed trigger
            self.log.exception("Unexpected error while watching Bloom brand %s", self.brand_id)
            event = error_event({"brand": brand}, exc)
        await hold_until(self.not_before)
        return event
