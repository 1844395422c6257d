"""BloomImagesTrigger: wait in the triggerer until every listed Bloom image is terminal.

One long-poll ``GET /images?ids=...&wait=true`` per chunk of <= 50 ids, all
chunks concurrently, re-issued for the ids still running until they are all
terminal or the deadline passes. Everything is async (httpx, async connection
lookup); the trigger only reads, so running it twice or restarting it on
another triggerer is harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_bloom._images import flatten_image_ids, is_terminal, slim_record, wait_window
from airflow_provider_bloom._spec import MAX_WAIT_SECONDS, chunked
from airflow_provider_bloom.client import AsyncBloomClient
from airflow_provider_bloom.exceptions import BloomError, BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.triggers._retry import transient_delay


class BloomImagesMissingError(BloomError):
    """Bloom did not return some of the ids (deleted, or another account's)."""

    permanent = True


class BloomImagesTrigger(BaseTrigger):
    """Fire once every image in ``image_ids`` is ``completed`` or ``failed``, or at ``deadline``.

    :param image_ids: the ids to wait for (any number; chunked by 50).
    :param bloom_conn_id: the Bloom connection (looked up asynchronously; the key is never serialized).
    :param deadline: absolute time (epoch seconds, UTC) after which the trigger answers ``timeout``.
        Absolute, so a trigger restarted on another triggerer keeps the original deadline.
    :param poll_timeout: seconds each long-poll may be held by Bloom (1..295).
    :param include_urls: ask Bloom for signed download URLs and keep them in the event.
    :param retry_delay: first pause before re-issuing a long-poll after a transient error
        (429, 5xx, network) that the client's own retries did not absorb; doubles up to 30 s,
        with jitter; a ``Retry-After`` from Bloom wins.

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
    ) -> None:
        super().__init__()
        self.image_ids = flatten_image_ids(image_ids, "image_ids")
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
            raise BloomInputError("deadline", f"must be epoch seconds (a number); got {deadline!r:.60}")
        if (
            isinstance(poll_timeout, bool)
            or not isinstance(poll_timeout, int)
            or not 1 <= poll_timeout <= 295
        ):
            raise BloomInputError(
                "poll_timeout", f"must be a whole number of seconds within 1..295; got {poll_timeout!r}"
            )
        if not isinstance(retry_delay, (int, float)) or retry_delay < 0:
            raise BloomInputError("retry_delay", f"must be a number of seconds >= 0; got {retry_delay!r}")
        self.deadline = float(deadline)
        self.bloom_conn_id = bloom_conn_id
        self.poll_timeout = poll_timeout
        self.include_urls = bool(include_urls)
        self.retry_delay = float(retry_delay)

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
        """Wait and return the event payload (the client is closed before this returns)."""
        records: dict[str, dict[str, Any]] = {}
        try:
            client = await BloomHook(bloom_conn_id=self.bloom_conn_id).aget_client()
            async with client:
                await _all_or_cancel(
                    self._wait_chunk(client, chunk, records) for chunk in chunked(self.image_ids)
                )
        except BloomError as exc:
            self.log.warning("Waiting for Bloom images failed: %s", exc)
            return self._event(
                "error",
                records,
                str(exc),
                code=getattr(exc, "code", None) or type(exc).__name__,
                permanent=bool(exc.permanent),
            )
        except Exception as exc:  # one error event, never a crashed trigger
            self.log.exception("Unexpected error while waiting for Bloom images")
            return self._event("error", records, f"{type(exc).__name__}: {exc}", code=type(exc).__name__)
        return self._final_event(records)

    async def _wait_chunk(
        self, client: AsyncBloomClient, chunk: list[str], records: dict[str, dict[str, Any]]
    ) -> None:
        pending = list(chunk)
        failures = 0
        while pending:
            left = self.deadline - time.time()
            if left <= 0:
                return
            try:
                page = await client.list_images(
                    ids=pending,
                    wait=True,
                    timeout=wait_window(left, self.poll_timeout),
                    include_urls=self.include_urls or None,
                )
            except BloomError as exc:
                if exc.permanent:
                    raise
                failures += 1
                delay = transient_delay(exc, failures, self.retry_delay, self.deadline - time.time())
                self.log.warning(
                    "Transient error while waiting for %d Bloom image(s) (%s); asking again in %.1fs",
                    len(pending),
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            for image in page.get("images", []):
                if image.get("id") in pending:
                    records[image["id"]] = image
            missing = [i for i in pending if i not in records]
            if missing:
                raise BloomImagesMissingError(
                    f"Bloom did not return these images (deleted, or not visible to this key): {missing}"
                )
            pending = [i for i in pending if not is_terminal(records[i])]

    def _event(
        self, status: str, records: dict[str, dict[str, Any]], message: str, **extra: Any
    ) -> dict[str, Any]:
        images = [
            slim_record(records[i], include_urls=self.include_urls)
            if i in records
            else {"id": i, "status": None}
            for i in self.image_ids
        ]
        return {"status": status, "images": images, "message": message, **extra}

    def _final_event(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        total = len(self.image_ids)
        running = [i for i in self.image_ids if not is_terminal(records.get(i, {}))]
        failed = [i for i in self.image_ids if records.get(i, {}).get("status") == "failed"]
        if running:
            return self._event(
                "timeout",
                records,
                f"Deadline passed with {len(running)} of {total} Bloom image(s) still running",
            )
        if failed:
            return self._event("failed", records, f"{len(failed)} of {total} Bloom image(s) failed")
        return self._event("success", records, f"All {total} Bloom image(s) completed")


async def _all_or_cancel(coroutines: Iterable[Awaitable[None]]) -> None:
    """Run concurrently; on the first error cancel the rest (and wait for them) before raising it."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()  # no-op for finished tasks; reached on our own cancellation too
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
