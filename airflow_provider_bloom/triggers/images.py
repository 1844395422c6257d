"""BloomImagesTrigger: wait in the triggerer until every listed Bloom image is terminal.

The trigger hands its ids to the wait hub of its credential (:mod:`airflow_provider_bloom.triggers.hub`),
which long-polls ``GET /images?ids=...&wait=true`` for it while the request budget allows and sweeps
many triggers' ids together when it does not. Everything is async (httpx, one async connection
lookup shared by the triggers that start together); the trigger only reads, so running it twice or
restarting it on another triggerer is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_bloom.exceptions import BloomImagesMissingError
from airflow_provider_bloom.logic.records import ImagesEvent, flatten_image_ids, slim_record
from airflow_provider_bloom.logic.waiting import PendingImages
from airflow_provider_bloom.triggers._base import BloomWaitTrigger
from airflow_provider_bloom.triggers.hub import WaitHub

__all__ = ["BloomImagesMissingError", "BloomImagesTrigger"]


class BloomImagesTrigger(BloomWaitTrigger):
    """Fire once every image in ``image_ids`` is ``completed`` or ``failed``, or at ``deadline``.

    :param image_ids: the ids to wait for (any number; the hub asks for at most 50 per request).
    :param include_urls: ask Bloom for signed download URLs and keep them in the event.
    :param settled: the small records (:func:`~airflow_provider_bloom.logic.records.slim_record`, never
        a signed URL) of images already known to be terminal: the worker's brief wait hands them over,
        so that only the ids still running are asked for. Serialized only when there are some.

    ``deadline``, ``bloom_conn_id``, ``poll_timeout``, ``retry_delay`` and ``not_before``: see
    :class:`~airflow_provider_bloom.triggers._base.BloomWaitTrigger`.

    Yields exactly one event ``{"status", "images", "message"}``: ``success`` (all completed),
    ``failed`` (all terminal, some failed), ``timeout`` (deadline passed) or ``error`` (a
    non-transient error; the event then also carries Bloom's ``code`` and ``permanent``).
    ``images`` holds the small records of :class:`~airflow_provider_bloom.logic.records.ImageRecord`.
    """

    def __init__(
        self,
        image_ids: list[str],
        deadline: float,
        *,
        include_urls: bool = False,
        settled: Sequence[Mapping[str, Any]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(deadline=deadline, **kwargs)
        self.image_ids = flatten_image_ids(image_ids, "image_ids")
        self.include_urls = bool(include_urls)
        self.settled = [slim_record(r) for r in settled]
        self._state: PendingImages

    def arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"image_ids": list(self.image_ids), "include_urls": self.include_urls}
        if self.settled:
            arguments["settled"] = list(self.settled)
        return arguments

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {len(self.image_ids)} image(s) conn={self.bloom_conn_id!r} "
            f"deadline={self.deadline:.0f}>"
        )

    async def wait(self) -> ImagesEvent:
        # Built here, once per run: each run starts from what the worker handed over, nothing more.
        self._state = PendingImages(self.image_ids, self.settled)
        return await super().wait()  # type: ignore[return-value]

    async def wait_in(self, hub: WaitHub) -> ImagesEvent:
        await hub.wait_images(self._state, self, include_urls=self.include_urls)
        return self._state.event(include_urls=self.include_urls)

    def error_event(self, error: BaseException) -> ImagesEvent:
        return self._state.event(include_urls=self.include_urls, error=error)
