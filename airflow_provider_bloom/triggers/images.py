"""BloomImagesTrigger: wait in the triggerer until every listed Bloom image is terminal.

The trigger hands its ids to the wait hub of its credential (:mod:`airflow_provider_bloom.triggers.hub`),
which long-polls ``GET /images?ids=...&wait=true`` for it while the request budget allows and sweeps
many triggers' ids together when it does not. Everything is async (httpx, one async connection
lookup shared by the triggers that start together); the trigger only reads, so running it twice or
restarting it on another triggerer is harmless.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_bloom._images import flatten_image_ids
from airflow_provider_bloom._spec import MAX_WAIT_SECONDS
from airflow_provider_bloom.exceptions import BloomError, BloomImagesMissingError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.triggers.hub import connection_settings, hold_until, hub_for
from airflow_provider_bloom.waiting import (
    ImageWait,
    check_epoch,
    check_poll_timeout,
    check_retry_delay,
    error_event,
)

__all__ = ["BloomImagesMissingError", "BloomImagesTrigger"]


class BloomImagesTrigger(BaseTrigger):
    """Fire once every image in ``image_ids`` is ``completed`` or ``failed``, or at ``deadline``.

    :param image_ids: the ids to wait for (any number; the hub asks for at most 50 per request).
    :param bloom_conn_id: the Bloom connection (looked up asynchronously; the key is never serialized).
    :param deadline: absolute time (epoch seconds, UTC) after which the trigger answers ``timeout``.
        Absolute, so a trigger restarted on another triggerer keeps the original deadline.
    :param poll_timeout: seconds each long-poll may be held by Bloom (1..295).
    :param include_urls: ask Bloom for signed download URLs and keep them in the event.
    :param retry_delay: first pause before asking again after a transient error (5xx, network);
        doubles up to 30 s, with jitter; a ``Retry-After`` from Bloom wins. A 429 slows the whole
        hub instead.
    :param not_before: epoch seconds before which the event is not fired (the operator sets it a few
        seconds after it deferred, so that Airflow's scheduler has handled the deferring worker's
        exit before the task resumes: see "Deferral and Airflow's defer-exit race" in the README).

    Yields exactly one event ``{"status", "images", "message"}``: ``success`` (all completed),
    ``failed`` (all terminal, some failed), ``timeout`` (deadline passed) or ``error`` (a
    non-transient error; the event then also carries Bloom's ``code`` and ``permanent``).
    ``images`` holds the small records of :data:`~airflow_provider_bloom._images.IMAGE_RECORD_FIELDS`.
    """

    def __init__(
        self,
        image_ids: list[str],
        deadline: float,
        bloom_conn_id: str = BloomHook.default_conn_name,
        poll_timeout: int = MAX_WAIT_SECONDS,
        include_urls: bool = False,
        retry_delay: float = 1.0,
        not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.image_ids = flatten_image_ids(image_ids, "image_ids")
        self.deadline = float(check_epoch("deadline", deadline))  # type: ignore[arg-type]
        self.poll_timeout = check_poll_timeout(poll_timeout)
        self.retry_delay = check_retry_delay(retry_delay)
        self.bloom_conn_id = str(bloom_conn_id)
        self.include_urls = bool(include_urls)
        self.not_before = check_epoch("not_before", not_before, optional=True)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "image_ids": list(self.image_ids),
                "deadline": self.deadline,
                "bloom_conn_id": self.bloom_conn_id,
                "poll_timeout": self.poll_timeout,
                "include_urls": self.include_urls,
                "retry_delay": self.retry_delay,
                "not_before": self.not_before,
            },
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {len(self.image_ids)} image(s) conn={self.bloom_conn_id!r} "
            f"deadline={self.deadline:.0f}>"
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self.wait()
        yield TriggerEvent(event)

    async def wait(self) -> dict[str, Any]:
        """Wait through the hub and return the one event payload."""
        state = ImageWait(self.image_ids)
        try:
            settings = await connection_settings(self.bloom_conn_id)
            async with hub_for(settings) as hub:
                await hub.wait_images(
                    state,
                    deadline=self.deadline,
                    poll_timeout=self.poll_timeout,
                    include_urls=self.include_urls,
                    retry_delay=self.retry_delay,
                )
            event = state.event(include_urls=self.include_urls)
        except BloomError as exc:
            self.log.warning("Waiting for Bloom images failed: %s", exc)
            event = error_event(state.event(include_urls=self.include_urls), exc)
        except Exception as exc:  # one error event, never a crashed trigger
            self.log.exception("Unexpected error while waiting for Bloom images")
            event = error_event(state.event(include_urls=self.include_urls), exc)
        await hold_until(self.not_before)
        return event
