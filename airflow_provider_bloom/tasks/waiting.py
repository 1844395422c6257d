"""The worker side of waiting for images: wait in the worker, or defer to the triggerer's wait hub, and
read the trigger's event back (shared by the image operators and the image sensor).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_bloom.client.retry import is_transient
from airflow_provider_bloom.exceptions import BloomError
from airflow_provider_bloom.logic.records import (
    EVENT_STATUSES,
    EventStatus,
    ImageRecord,
    ImageStatus,
    slim_record,
)
from airflow_provider_bloom.logic.waiting import event_error

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_bloom.hooks.bloom import BloomHook

from airflow_provider_bloom.tasks.base import (
    DEFAULT_DEFER_AFTER,
    DEFAULT_MIN_DEFER_SECONDS,
    DEFERRAL_MARGIN_SECONDS,
    bloom_errors,
)

T = TypeVar("T")


class BriefWait(NamedTuple):
    """What a worker's brief wait saw (:meth:`ImageCompletionMixin.brief_wait`)."""

    #: Every image's record when all of them ended in time, else None (defer).
    records: list[dict[str, Any]] | None
    #: The slim records of those that did end, for the trigger (none with ``include_urls``).
    settled: list[ImageRecord]


class ImageCompletionMixin:
    """``wait_for_completion`` / ``deferrable`` for operators that start image work.

    Subclasses set ``wait_for_completion``, ``deferrable``, ``wait_timeout``
    (seconds the wait may take), ``poll_timeout``, ``on_failure`` and
    ``include_urls`` (checked by :func:`check_wait_options`), then call
    :meth:`wait_or_defer` with the new ids. In deferrable mode the task defers to
    :class:`~airflow_provider_bloom.triggers.images.BloomImagesTrigger` (see
    :meth:`defer_for_images`) and resumes in :meth:`execute_complete`.
    """

    wait_for_completion: bool
    deferrable: bool
    wait_timeout: float
    poll_timeout: int
    on_failure: str
    include_urls: bool
    defer_after: float = DEFAULT_DEFER_AFTER
    min_defer_seconds: float = DEFAULT_MIN_DEFER_SECONDS
    bloom_conn_id: str
    log: Any

    if TYPE_CHECKING:  # provided by the operator (BloomBaseOperator.hook, BaseOperator.defer)

        @property
        def hook(self) -> BloomHook: ...

        def defer(
            self,
            *,
            trigger: Any,
            method_name: str,
            kwargs: dict[str, Any] | None = None,
            timeout: timedelta | float | None = None,
        ) -> NoReturn: ...

    def defer_for_images(
        self,
        context: Context,
        image_ids: Sequence[str],
        wait_timeout: float | None = None,
        settled: Sequence[ImageRecord] = (),
    ) -> NoReturn:
        """Hand the wait to :class:`BloomImagesTrigger`, freeing the worker slot.

        The task resumes in ``execute_complete`` with the trigger's event, which the trigger holds
        until ``min_defer_seconds`` after this deferral (Airflow's defer-exit race). ``settled``: the
        images a brief wait saw end (see :meth:`brief_wait`), so that the trigger asks only for the rest.
        """
        from airflow_provider_bloom.triggers.images import BloomImagesTrigger

        seconds = self.wait_timeout if wait_timeout is None else max(1.0, wait_timeout)
        wanted = set(image_ids)
        now = time.time()
        deadline = datetime.fromtimestamp(now, timezone.utc) + timedelta(seconds=seconds)
        self.log.info(
            "Deferring: waiting in the triggerer for %d Bloom image(s) until %s",
            len(image_ids),
            deadline.isoformat(timespec="seconds"),
        )
        self.defer(
            trigger=BloomImagesTrigger(
                image_ids=list(image_ids),
                bloom_conn_id=self.bloom_conn_id,
                deadline=deadline.timestamp(),
                poll_timeout=self.poll_timeout,
                include_urls=self.include_urls,
                settled=[r for r in settled if r["id"] in wanted],
                not_before=now + self.min_defer_seconds,
            ),
            method_name="execute_complete",
            # A backstop only: the trigger itself answers "timeout" at the deadline.
            timeout=timedelta(seconds=seconds + DEFERRAL_MARGIN_SECONDS),
        )

    def brief_wait(self, image_ids: Sequence[str]) -> BriefWait:
        """Before deferring, wait up to ``defer_after`` seconds in the worker (one long-poll per 50 ids),
        and never longer than ``wait_timeout``.

        ``records`` when every image is terminal by then (the task need not defer), else None: defer
        (see :func:`pre_wait`: a transient error means "defer now"; a permanent one fails the task).
        ``settled``: the records of the images that did end, without their signed URLs; with
        ``include_urls`` none, as the trigger must read every URL itself (a terminal id rides free in
        the long-poll of the running ones, one more read would not).
        """
        # Never longer than the whole wait may take: a sensor with timeout=1 gives up after 1 s, not 10.
        seconds = min(self.defer_after, self.wait_timeout)
        if seconds <= 0:
            return BriefWait(None, [])
        window = max(1, min(self.poll_timeout, int(seconds)))
        records = pre_wait(
            self.log,
            "Waiting for Bloom images",
            lambda: self.hook.wait_for_images(
                list(image_ids),
                timeout=seconds,
                poll_timeout=window,
                include_urls=self.include_urls or None,
                retry_transient=False,
            ),
        )
        if records is None:
            return BriefWait(None, [])
        if all(ImageStatus.is_terminal(r.get("status")) for r in records):
            self.log.info("All %d Bloom image(s) ended within defer_after: no deferral", len(records))
            return BriefWait(records, [])
        if self.include_urls:
            return BriefWait(None, [])
        return BriefWait(None, [slim_record(r) for r in records if ImageStatus.is_terminal(r.get("status"))])

    def wait_briefly_or_defer(
        self, context: Context, image_ids: Sequence[str], before_defer: Callable[[], None] | None = None
    ) -> list[dict[str, Any]]:
        """Deferrable mode: the records when every image ends within the brief wait; else defers (after
        ``before_defer``) with what is left of ``wait_timeout``, and the task resumes in
        ``execute_complete``."""
        started = time.monotonic()
        brief = self.brief_wait(image_ids)
        if brief.records is not None:
            return brief.records
        if before_defer is not None:
            before_defer()
        left = self.wait_timeout - (time.monotonic() - started)
        self.defer_for_images(context, image_ids, left, brief.settled)

    def wait_or_defer(self, context: Context, image_ids: Sequence[str]) -> list[ImageRecord]:
        started = time.monotonic()
        if self.deferrable:
            records = self.wait_briefly_or_defer(context, image_ids)
        else:
            with bloom_errors("Waiting for Bloom images"):
                records = self.hook.wait_for_images(
                    list(image_ids),
                    timeout=self.wait_timeout,
                    poll_timeout=self.poll_timeout,
                    include_urls=self.include_urls or None,
                )
        self.log.info("Waited %.1fs for %d image(s)", time.monotonic() - started, len(records))
        return resolve_images(records, self.on_failure, self.log, include_urls=self.include_urls)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        records = images_from_event(event)
        return resolve_images(records, self.on_failure, self.log, include_urls=self.include_urls)


def pre_wait(log: Any, what: str, wait: Callable[[], T]) -> T | None:
    """Run a worker's brief wait before it defers; the one behaviour of every pre-wait.

    Returns what ``wait`` returns; None after a transient error (the caller defers now and the
    triggerer asks again, with its own backoff). Any other error fails the try as
    :func:`~airflow_provider_bloom.tasks.base.bloom_errors` decides (permanent: no Airflow retries).
    """
    try:
        with bloom_errors(what):
            return wait()
    except BloomError as exc:
        if not is_transient(exc):
            raise
        log.info("Could not finish waiting in the worker (%s); deferring", exc)
        return None


def raise_for_error_event(event: Mapping[str, Any], subject: str) -> None:
    """A trigger's ``error`` event raises: ``AirflowFailException`` when it says a retry cannot help
    (``permanent``), else ``BloomError`` so Airflow's retries apply. Other events pass."""
    if event.get("status") != EventStatus.ERROR:
        return
    error = event_error(event, subject)
    if error.permanent:
        raise AirflowFailException(str(error))
    raise error


def images_from_event(event: Any) -> list[dict[str, Any]]:
    """Validate a BloomImagesTrigger event; raise a clear error for anything else.

    ``success``/``failed`` return the image records (``resolve_images`` applies
    ``on_failure``). ``error`` raises: ``AirflowFailException`` when the trigger
    says a retry cannot help (``permanent``), else ``BloomError`` so Airflow's
    retries apply. ``timeout`` raises ``BloomError`` listing the images still running.
    """
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise AirflowFailException(f"Unexpected event from the Bloom trigger: {event!r:.300}")
    images = event.get("images")
    if not isinstance(images, list) or not all(isinstance(i, dict) and i.get("id") for i in images):
        raise AirflowFailException(f"Bloom trigger event without valid images: {event!r:.300}")
    raise_for_error_event(event, "Bloom images")
    if event["status"] == EventStatus.TIMEOUT:
        pending = [i.get("id") for i in images if not ImageStatus.is_terminal(i.get("status"))]
        raise BloomError(
            f"Timed out waiting for Bloom images; still running: {pending}. {event.get('message')}"
        )
    return images


def resolve_images(
    records: list[dict[str, Any]], on_failure: str, log: Any, *, include_urls: bool = False
) -> list[ImageRecord]:
    """Apply ``on_failure`` to terminal records and return the XCom-sized list."""
    slim = [slim_record(r, include_urls=include_urls) for r in records]
    running = [r["id"] for r in slim if not ImageStatus.is_terminal(r["status"])]
    if running:
        raise BloomError(f"Timed out waiting for Bloom images; still running: {running}")
    failed = [r for r in slim if r["status"] == ImageStatus.FAILED]
    if failed:
        detail = ", ".join(f"{r['id']} ({r.get('failureReason') or 'no reason given'})" for r in failed)
        if on_failure == "fail":
            raise AirflowFailException(f"{len(failed)} of {len(slim)} Bloom image(s) failed: {detail}")
        if on_failure == "skip":
            raise AirflowSkipException(f"{len(failed)} of {len(slim)} Bloom image(s) failed: {detail}")
        log.warning(
            "%d of %d Bloom image(s) failed (on_failure='ignore'): %s", len(failed), len(slim), detail
        )
    return slim


__all__ = [
    "ImageCompletionMixin",
    "images_from_event",
    "pre_wait",
    "raise_for_error_event",
    "resolve_images",
]
