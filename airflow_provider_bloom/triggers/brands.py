"""BloomBrandTrigger: wait in the triggerer until a brand's onboarding ends, without blocking the loop.

It long-polls ``GET /brands/{id}?wait=true`` through the async client (connection looked up
asynchronously) until the brand is terminal (``ready``, ``logo_required``, ``failed``) or the
absolute deadline passes, then fires exactly one event ``{"status", "brand", "message"}``:

* ``success``: the brand is ``ready``;
* ``failed``: the brand ended ``failed`` or ``logo_required`` (the sensor decides what that means);
* ``timeout``: the deadline passed while the brand was still ``analyzing``;
* ``error``: a permanent Bloom error (the event also carries Bloom's ``code`` and ``permanent``),
  or something unexpected. Transient errors (429, 5xx, network) are asked again until the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_bloom._images import wait_window
from airflow_provider_bloom._spec import MAX_WAIT_SECONDS, TERMINAL_BRAND_STATUSES, check_uuid
from airflow_provider_bloom.exceptions import BloomError, BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.operators._base import check_wait_options
from airflow_provider_bloom.triggers._retry import transient_delay

#: The fields of a brand that travel in events and XCom: small and JSON-native.
BRAND_RECORD_FIELDS = ("id", "status", "name", "url", "logoUrl", "logoError", "failure", "workspaceId")
BRAND_EVENT_STATUSES = ("success", "failed", "timeout", "error")
#: Longest pause between long-polls after a transient error.


def slim_brand(record: Mapping[str, Any]) -> dict[str, Any]:
    """The XCom-sized view of a brand record."""
    slim = {name: record.get(name) for name in BRAND_RECORD_FIELDS}
    failure = slim.get("failure")
    if isinstance(failure, Mapping):
        slim["failure"] = {"code": failure.get("code"), "message": failure.get("message")}
    return slim


def brand_event_status(brand: Mapping[str, Any]) -> str:
    return "success" if brand.get("status") == "ready" else "failed"


class BloomBrandTrigger(BaseTrigger):
    """Fire once when a Bloom brand's onboarding ends or ``deadline`` (epoch seconds, UTC) passes.

    :param brand_id: the brand to watch.
    :param deadline: absolute end of the wait, as a UNIX timestamp (a restarted trigger keeps it).
    :param bloom_conn_id: the Bloom connection (looked up asynchronously; the key is never serialized).
    :param poll_timeout: seconds per long-poll (1-295).
    :param retry_delay: first pause before asking again after a transient error (429, 5xx, network)
        the client's own retries did not absorb; doubles up to 30 s, with jitter.
    """

    def __init__(
        self,
        brand_id: str,
        deadline: float,
        bloom_conn_id: str = BloomHook.default_conn_name,
        poll_timeout: int = MAX_WAIT_SECONDS,
        retry_delay: float = 1.0,
    ) -> None:
        super().__init__()
        self.brand_id = check_uuid("brand_id", brand_id)
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
            raise BloomInputError("deadline", f"must be epoch seconds (a number); got {deadline!r:.60}")
        check_wait_options(poll_timeout=poll_timeout, on_failure="fail")
        if isinstance(retry_delay, bool) or not isinstance(retry_delay, (int, float)) or retry_delay < 0:
            raise BloomInputError("retry_delay", f"must be a number of seconds >= 0; got {retry_delay!r}")
        self.deadline = float(deadline)
        self.bloom_conn_id = str(bloom_conn_id)
        self.poll_timeout = int(poll_timeout)
        self.retry_delay = float(retry_delay)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "brand_id": self.brand_id,
                "deadline": self.deadline,
                "bloom_conn_id": self.bloom_conn_id,
                "poll_timeout": self.poll_timeout,
                "retry_delay": self.retry_delay,
            },
        )

    def __repr__(self) -> str:
        name, conn = type(self).__name__, self.bloom_conn_id
        return f"<{name} brand={self.brand_id} conn={conn!r} deadline={self.deadline:.0f}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self.wait())

    async def wait(self) -> dict[str, Any]:
        """Wait and return the one event payload (the client is closed before this returns)."""
        brand: dict[str, Any] = {"id": self.brand_id, "status": None}
        failures = 0
        try:
            client = await BloomHook(bloom_conn_id=self.bloom_conn_id).aget_client()
            async with client:
                while True:
                    left = self.deadline - time.time()
                    if left <= 0:
                        status = brand.get("status") or "not checked"
                        message = f"Bloom brand {self.brand_id} is still {status} at the deadline"
                        return {"status": "timeout", "brand": brand, "message": message}
                    try:
                        answer = await client.get_brand(
                            self.brand_id, wait=True, timeout=wait_window(left, self.poll_timeout)
                        )
                    except BloomError as exc:
                        if exc.permanent:
                            raise
                        failures += 1
                        delay = transient_delay(exc, failures, self.retry_delay, self.deadline - time.time())
                        self.log.warning(
                            "Transient error watching brand %s (%s); again in %.1fs",
                            self.brand_id,
                            exc,
                            delay,
                        )
                        await asyncio.sleep(delay)
                        continue
                    failures = 0
                    brand = slim_brand(answer)
                    if brand["status"] in TERMINAL_BRAND_STATUSES:
                        message = f"Bloom brand {self.brand_id} is {brand['status']}"
                        return {"status": brand_event_status(brand), "brand": brand, "message": message}
                    self.log.debug("Brand %s still %s", self.brand_id, brand["status"])
        except BloomError as exc:
            code = getattr(exc, "code", None) or type(exc).__name__
            return {
                "status": "error",
                "brand": brand,
                "message": str(exc),
                "code": code,
                "permanent": exc.permanent,
            }
        except Exception as exc:  # one error event, never a crashed trigger
            self.log.exception("Unexpected error while watching Bloom brand %s", self.brand_id)
            message = f"{type(exc).__name__}: {exc}"
            return {
                "status": "error",
                "brand": brand,
                "message": message,
                "code": type(exc).__name__,
                "permanent": False,
            }
