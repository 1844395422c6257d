"""BloomImageSensor: wait until Bloom images are terminal, in the triggerer (deferrable) or by poking."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue

from airflow_provider_bloom.client.spec import MAX_WAIT_SECONDS
from airflow_provider_bloom.exceptions import BloomError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.links import BloomImageLink, image_links
from airflow_provider_bloom.logic.records import EventStatus, flatten_image_ids
from airflow_provider_bloom.logic.waiting import PendingImages
from airflow_provider_bloom.tasks.base import (
    DEFAULT_DEFER_AFTER,
    DEFAULT_MIN_DEFER_SECONDS,
    bloom_errors,
    check_wait_options,
    default_deferrable,
    known_at_parse_time,
    literal_from_template,
)
from airflow_provider_bloom.tasks.waiting import ImageCompletionMixin, images_from_event, resolve_images

if TYPE_CHECKING:
    from airflow.sdk import Context


class BloomImageSensor(ImageCompletionMixin, BaseSensorOperator):
    """Wait until every image in ``image_ids`` is ``completed`` or ``failed``.

    Deferrable (the default follows ``[operators] default_deferrable``): the
    task frees its worker slot and :class:`~airflow_provider_bloom.triggers.images.BloomImagesTrigger`
    long-polls ``GET /images?ids=...&wait=true`` per chunk of 50 ids. In
    ``poke``/``reschedule`` mode each poke is one ``GET /images?ids=...`` per
    chunk of <= 50 ids still running.

    Returns (XCom) the image records in the order of ``image_ids``: id, status,
    imageUrl, width, height, aspectRatio, actionType, variantGroupId,
    failureReason, prompt (signed download URLs only with ``include_urls=True``).

    :param image_ids: the ids to wait for: a list, an XComArg, BloomGenerateImageOperator's output,
        or a mapped task's output (a list of lists, flattened). Templated.
    :param bloom_conn_id: the Bloom connection.
    :param deferrable: wait in the triggerer.
    :param on_failure: when an image failed: "fail" (default; the error lists ids and
        failureReason), "skip" the task, or "ignore" (return completed and failed records).
    :param include_urls: keep Bloom's signed download URLs in the records.
    :param poll_timeout: seconds Bloom may hold each long-poll in deferrable mode (1..295).
    :param poke_interval: seconds between pokes (poke/reschedule mode).
    :param timeout: seconds before the sensor gives up (``AirflowSensorTimeout``).
    :param defer_after: deferrable mode: seconds to wait in the worker (one long-poll) before
        deferring, at most ``timeout``; images that end within it need no deferral (default 10; 0 defers
        at once).
    :param min_defer_seconds: deferrable mode: the trigger does not fire sooner than this after
        the deferral (default 10), which keeps Airflow's defer-exit race from failing the task.
    """

    template_fields: Sequence[str] = ("image_ids",)
    operator_extra_links = image_links()
    ui_color = "#f4d6e6"

    def __init__(
        self,
        *,
        image_ids: Any,
        bloom_conn_id: str = BloomHook.default_conn_name,
        deferrable: bool | None = None,
        on_failure: str = "fail",
        include_urls: bool = False,
        poll_timeout: int = MAX_WAIT_SECONDS,
        poke_interval: timedelta | float = 10,
        defer_after: float = DEFAULT_DEFER_AFTER,
        min_defer_seconds: float = DEFAULT_MIN_DEFER_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        check_wait_options(
            poll_timeout=poll_timeout,
            on_failure=on_failure,
            defer_after=defer_after,
            min_defer_seconds=min_defer_seconds,
        )
        if known_at_parse_time(image_ids):
            flatten_image_ids(image_ids, "image_ids")  # BloomInputError now, when the DAG is built
        self.defer_after = float(defer_after)
        self.min_defer_seconds = float(min_defer_seconds)
        self.image_ids = image_ids
        self.bloom_conn_id = bloom_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.on_failure = on_failure
        self.include_urls = include_urls
        self.poll_timeout = poll_timeout
        self.wait_for_completion = True
        self.wait_timeout = float(self.timeout)  # the deferred wait's deadline is the sensor's timeout
        self._state: PendingImages | None = None

    @cached_property
    def hook(self) -> BloomHook:
        return BloomHook(bloom_conn_id=self.bloom_conn_id)

    @cached_property
    def ids(self) -> list[str]:
        """``image_ids`` once rendered, flattened and checked."""
        with bloom_errors("BloomImageSensor"):
            return flatten_image_ids(literal_from_template(self.image_ids), "image_ids")

    def execute(self, context: Context) -> Any:
        ids = self.ids
        BloomImageLink.persist_all(context, self.hook.settings.base_url, ids)
        if self.deferrable:  # a brief wait in the worker, then the triggerer (ImageCompletionMixin)
            return self.wait_or_defer(context, ids)
        return super().execute(context)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        if self._state is None:
            self._state = PendingImages(self.ids)
        state = self._state
        for batch in state.batches():
            try:
                with bloom_errors("Checking Bloom images"):
                    page = self.hook.list_images(ids=batch, include_urls=self.include_urls or None)
                    state.apply(batch, page)
            except BloomError as exc:  # transient (permanent ones fail above): try again next poke
                self.log.warning("Could not check %d Bloom image(s) this time: %s", len(batch), exc)
                return False
        if not state.done:
            done = len(state.ids) - len(state.pending)
            self.log.info("%d of %d Bloom image(s) terminal", done, len(state.ids))
            return False
        return PokeReturnValue(
            True, resolve_images(state.ordered(), self.on_failure, self.log, include_urls=self.include_urls)
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        if isinstance(event, dict) and event.get("status") == EventStatus.TIMEOUT:
            raise AirflowSensorTimeout(
                f"Bloom images not terminal within {self.timeout:.0f}s: {event.get('message')}"
            )
        records = images_from_event(event)
        return resolve_images(records, self.on_failure, self.log, include_urls=self.include_urls)
