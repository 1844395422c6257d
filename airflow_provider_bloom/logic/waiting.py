"""One wait algorithm, free of I/O, shared by every way of waiting for Bloom images and brands.

The sync hook (:meth:`BloomHook.wait_for_images`), the sensor's poke mode and the triggerer's wait
hub (:mod:`airflow_provider_bloom.triggers.hub`) all drive :class:`PendingImages`; they differ only in
how they send requests (requests in a worker, httpx in the triggerer) and how they sleep. The
decisions live here, once:

* which ids are still pending, and what to ask next (chunks of at most 50 ids, Bloom's limit);
* what an answer means: a record per id; an id that Bloom did not return was deleted or is not
  visible to this key (:class:`~airflow_provider_bloom.exceptions.BloomImagesMissingError`, a
  permanent error, the same everywhere);
* which errors are transient (429, 5xx, network: :func:`is_transient`) and how long to back off
  (:func:`transient_delay`: Bloom's ``Retry-After`` when given, else jittered exponential backoff
  up to 30 s, never past the deadline);
* how long the next long-poll may be held (:func:`wait_window`);
* the one event a wait ends with: ``success``, ``failed``, ``timeout`` or ``error``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_bloom.client.spec import MAX_WAIT_SECONDS, chunked
from airflow_provider_bloom.exceptions import (
    BloomAPIError,
    BloomError,
    BloomImagesMissingError,
    BloomInputError,
)
from airflow_provider_bloom.logic.records import (
    BrandEvent,
    BrandRecord,
    BrandStatus,
    ErrorFields,
    EventStatus,
    ImageRecord,
    ImagesEvent,
    ImageStatus,
    is_terminal,
    slim_brand,
    slim_record,
)

#: Longest pause between re-issues after a transient error.
MAX_RETRY_DELAY = 30.0

__all__ = [
    "PendingImages",
    "brand_event",
    "brand_timeout_event",
    "check_epoch",
    "check_poll_timeout",
    "check_retry_delay",
    "error_fields",
    "event_error",
    "is_transient",
    "transient_delay",
    "wait_window",
]


def check_poll_timeout(value: object, field: str = "poll_timeout") -> int:
    """Seconds Bloom may hold one long-poll: a whole number within 1..295."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WAIT_SECONDS:
        raise BloomInputError(field, f"must be a whole number of seconds within 1..295; got {value!r}")
    return value


def check_retry_delay(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 300:
        raise BloomInputError("retry_delay", f"must be seconds within 0..300; got {value!r}")
    return float(value)


def check_epoch(field: str, value: object, *, optional: bool = False) -> float | None:
    """A deadline-like argument: epoch seconds (a finite number); ``None`` allowed when optional."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BloomInputError(field, f"must be epoch seconds (a finite number); got {value!r:.60}")
    return float(value)


def is_transient(exc: BaseException) -> bool:
    """True for Bloom errors that asking again may fix (429, 5xx, network); False for the rest."""
    return isinstance(exc, BloomError) and not exc.permanent


def transient_delay(exc: BaseException, failures: int, base: float, left: float) -> float:
    """Bloom's ``Retry-After`` when given, else jittered exponential backoff; never past the deadline."""
    retry_after = exc.retry_after if isinstance(exc, BloomAPIError) else None
    if retry_after is not None:
        delay = float(retry_after)
    else:
        delay = random.uniform(0.5, 1.0) * min(MAX_RETRY_DELAY, base * 2 ** max(0, failures - 1))  # noqa: S311
    return max(0.0, min(delay, MAX_RETRY_DELAY, left))


def wait_window(seconds_left: float, poll_timeout: int = MAX_WAIT_SECONDS) -> int:
    """The ``timeout`` of the next long-poll: what is left of the deadline, within Bloom's 1..295."""
    return int(max(1, min(poll_timeout, MAX_WAIT_SECONDS, int(seconds_left) or 1)))


class PendingImages:
    """The state of one wait for a set of image ids: what is known, what is pending.

    :param ids: the ids to wait for, unique, in the order results are returned.
    """

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids = list(dict.fromkeys(ids))
        self.records: dict[str, dict[str, Any]] = {}
        self.pending: list[str] = list(self.ids)

    def __repr__(self) -> str:
        return f"<PendingImages {len(self.pending)} of {len(self.ids)} pending>"

    @property
    def done(self) -> bool:
        return not self.pending

    def batches(self) -> list[list[str]]:
        """What to ask next: the pending ids in requests of at most 50."""
        return chunked(self.pending)

    def apply(self, asked: Iterable[str], page: Mapping[str, Any]) -> None:
        """Take Bloom's answer to a list request for ``asked`` (other ids in the page are ignored).

        :raises BloomImagesMissingError: Bloom did not return some of ``asked``.
        """
        asked = list(asked)
        wanted = set(asked)
        images = page.get("images") if isinstance(page, Mapping) else None
        for image in images if isinstance(images, list) else []:
            if isinstance(image, Mapping) and image.get("id") in wanted:
                self.records[str(image["id"])] = dict(image)
        returned = {i for i in asked if i in self.records}
        missing = [i for i in asked if i not in returned]
        self.pending = [i for i in self.pending if not is_terminal(self.records.get(i, {}))]
        if missing:
            raise BloomImagesMissingError(missing)

    def ordered(self) -> list[dict[str, Any]]:
        """The records in the order of ``ids``; an id never answered is ``{"id", "status": None}``."""
        return [self.records.get(i) or {"id": i, "status": None} for i in self.ids]

    def event(self, *, include_urls: bool = False, error: BaseException | None = None) -> ImagesEvent:
        """The one trigger event for this wait, as it stands (``error`` wins; pending means timeout)."""
        images: list[ImageRecord] = [slim_record(r, include_urls=include_urls) for r in self.ordered()]
        total = len(self.ids)
        if error is not None:
            return {"images": images, **error_fields(error)}
        if self.pending:
            message = f"Deadline passed with {len(self.pending)} of {total} Bloom image(s) still running"
            return {"status": EventStatus.TIMEOUT.value, "images": images, "message": message}
        failed = [r for r in images if r["status"] == ImageStatus.FAILED]
        if failed:
            message = f"{len(failed)} of {total} Bloom image(s) failed"
            return {"status": EventStatus.FAILED.value, "images": images, "message": message}
        message = f"All {total} Bloom image(s) completed"
        return {"status": EventStatus.SUCCESS.value, "images": images, "message": message}


def error_fields(error: BaseException) -> ErrorFields:
    """The fields of an ``error`` event: Bloom's ``code`` (or the error's type), whether a retry can help."""
    if isinstance(error, BloomError):
        code = getattr(error, "code", None) or type(error).__name__
        return {
            "status": EventStatus.ERROR.value,
            "message": str(error),
            "code": code,
            "permanent": bool(error.permanent),
        }
    return {
        "status": EventStatus.ERROR.value,
        "message": f"{type(error).__name__}: {error}",
        "code": type(error).__name__,
        "permanent": False,
    }


def event_error(event: Mapping[str, Any], subject: str) -> BloomError:
    """The error an ``error`` event stands for: its message with Bloom's code, ``permanent`` as it says.

    The worker raises it as it is (Airflow's retries apply) or, when permanent, fails the task.
    """
    code = f" ({event['code']})" if event.get("code") else ""
    error = BloomError(f"Waiting for {subject} failed{code}: {event.get('message')}")
    error.permanent = bool(event.get("permanent"))
    return error


def brand_event(brand: Mapping[str, Any]) -> BrandEvent | None:
    """The event for a brand record, or None while it is still onboarding."""
    slim = slim_brand(brand)
    status = slim["status"]
    if not BrandStatus.is_terminal(status):
        return None
    event_status = EventStatus.SUCCESS if status == BrandStatus.READY else EventStatus.FAILED
    return {"status": event_status.value, "brand": slim, "message": f"Bloom brand {slim['id']} is {status}"}


def brand_timeout_event(brand: BrandRecord) -> BrandEvent:
    status = brand.get("status") or "not checked"
    message = f"Bloom brand {brand.get('id')} is still {status} at the deadline"
    return {"status": EventStatus.TIMEOUT.value, "brand": brand.copy(), "message": message}
