"""Bloom's statuses and records as types: the neutral module every layer may import.

Statuses are ``str`` enums: a member *is* its string (``ImageStatus.FAILED == "failed"``), so records
read from Bloom's JSON compare against members as they are, and what this package writes (events,
XCom) keeps plain strings. Each enum carries its terminal rule (``is_terminal``), in the manner of the
dbt Cloud provider's ``DbtCloudJobRunStatus``. The record and event shapes are ``TypedDict``\\ s, so
mypy checks the code that builds and reads them.

Nothing here imports Airflow, an HTTP stack, the hook, triggers, operators or sensors: the triggerer,
the hook and the operators all use this one copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, TypedDict, cast

from airflow_provider_bloom.client.spec import check_uuid
from airflow_provider_bloom.exceptions import BloomInputError


class _StatusEnum(str, Enum):
    """A status whose members are their own strings (``str(member)`` and f-strings give the value)."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def is_terminal(cls, status: object) -> bool:
        """True when ``status`` (a member or the plain string from Bloom) ends the wait."""
        return isinstance(status, str) and status in TERMINAL[cls]


class ImageStatus(_StatusEnum):
    """``status`` of an image (Bloom's spec, ``GET /images``)."""

    PENDING = "pending"
    GENERATING = "generating"
    COMPLETED = "completed"
    FAILED = "failed"


class BrandStatus(_StatusEnum):
    """``status`` of a brand (Bloom's spec, ``GET /brands/{id}``)."""

    ANALYZING = "analyzing"
    READY = "ready"
    LOGO_REQUIRED = "logo_required"
    FAILED = "failed"


class EventStatus(_StatusEnum):
    """``status`` of the one event a Bloom trigger fires (every one ends the wait)."""

    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"


#: Each status's terminal rule: the statuses after which Bloom changes nothing (a wait ends there).
TERMINAL: dict[type[_StatusEnum], frozenset[str]] = {
    ImageStatus: frozenset({ImageStatus.COMPLETED, ImageStatus.FAILED}),
    BrandStatus: frozenset({BrandStatus.READY, BrandStatus.LOGO_REQUIRED, BrandStatus.FAILED}),
    EventStatus: frozenset(EventStatus),  # the event ends the wait, whatever it says
}
#: The statuses of the one event a Bloom wait ends with, as plain strings.
EVENT_STATUSES: tuple[str, ...] = tuple(status.value for status in EventStatus)


# --------------------------------------------------------------------------- records
class ImageRecord(TypedDict):
    """The XCom-sized view of an image record (:func:`slim_record`); Bloom's names."""

    id: str
    status: str | None
    imageUrl: str | None
    width: int | None
    height: int | None
    aspectRatio: str | None
    actionType: str | None
    variantGroupId: str | None
    failureReason: str | None
    prompt: str | None


class BrandFailure(TypedDict):
    code: str | None
    message: str | None


class BrandRecord(TypedDict):
    """The XCom-sized view of a brand record (:func:`slim_brand`); Bloom's names."""

    id: str
    status: str | None
    name: str | None
    url: str | None
    logoUrl: str | None
    logoError: str | None
    failure: BrandFailure | None
    workspaceId: str | None


#: The fields of an image record that go to XCom: small and JSON-native.
IMAGE_RECORD_FIELDS: tuple[str, ...] = tuple(ImageRecord.__annotations__)
#: The fields of a brand that travel in events and XCom: small and JSON-native.
BRAND_RECORD_FIELDS: tuple[str, ...] = tuple(BrandRecord.__annotations__)


# --------------------------------------------------------------------------- trigger events
class _Event(TypedDict):
    status: str  # an EventStatus value
    message: str


class ErrorFields(_Event):
    """What an ``error`` event adds: Bloom's ``code`` (or the error's type) and whether a retry can help."""

    code: str
    permanent: bool


class ImagesEvent(_Event, total=False):
    """The event of :class:`~airflow_provider_bloom.triggers.images.BloomImagesTrigger`."""

    images: list[ImageRecord]
    code: str
    permanent: bool


class BrandEvent(_Event, total=False):
    """The event of :class:`~airflow_provider_bloom.triggers.brands.BloomBrandTrigger`."""

    brand: BrandRecord
    code: str
    permanent: bool


# --------------------------------------------------------------------------- helpers
def is_terminal(record: Mapping[str, Any]) -> bool:
    """True when an image record is ``completed`` or ``failed``."""
    return ImageStatus.is_terminal(record.get("status"))


def slim_record(record: Mapping[str, Any], *, include_urls: bool = False) -> ImageRecord:
    """The XCom-sized view of an image record.

    ``imageUrl`` is kept when it is Bloom's short ``/img/{id}`` link; a signed
    (expiring) download URL is only kept when ``include_urls`` is True.
    """
    slim = cast(ImageRecord, {name: record.get(name) for name in IMAGE_RECORD_FIELDS})
    url = slim["imageUrl"]
    if url and not include_urls and "/img/" not in str(url):
        slim["imageUrl"] = None
    return slim


def slim_brand(record: Mapping[str, Any]) -> BrandRecord:
    """The XCom-sized view of a brand record."""
    slim = cast(BrandRecord, {name: record.get(name) for name in BRAND_RECORD_FIELDS})
    failure: Any = slim["failure"]
    if isinstance(failure, Mapping):
        slim["failure"] = {"code": failure.get("code"), "message": failure.get("message")}
    return slim


def flatten_image_ids(value: Any, field: str = "image_ids") -> list[str]:
    """Accept what users pass around in DAGs and return unique image ids in order.

    A single id, a list of ids, a list of lists (a mapped task's output), the
    records a sensor returns (dicts with ``id``), or the dict an operator returns
    with ``image_ids``/``ids``.
    """
    out: list[str] = []

    def visit(item: Any) -> None:
        if item is None:
            return
        if isinstance(item, str):
            out.append(check_uuid(field, item.strip()))
        elif isinstance(item, Mapping):
            for key in ("id", "image_id", "image_ids", "ids"):
                if key in item:
                    visit(item[key])
                    return
            raise BloomInputError(field, f"a record without an 'id' field: {dict(item)!r:.120}")
        elif isinstance(item, Iterable):
            for sub in item:
                visit(sub)
        else:
            raise BloomInputError(field, f"must be image ids (strings); got {type(item).__name__}")

    visit(value)
    unique = list(dict.fromkeys(out))
    if not unique:
        raise BloomInputError(field, "no image ids were given")
    return unique


def answer_ids(answer: Mapping[str, Any]) -> list[str]:
    """The image ids an accepted request's answer names: its ``ids``, or its one ``id``."""
    ids = answer.get("ids")
    if isinstance(ids, list):
        return [str(i) for i in ids]
    return [str(answer["id"])]


def valid_answer(answer: Any) -> bool:
    """Whether ``answer`` names the images Bloom created: a non-empty list of ``ids``, or an ``id``."""
    if not isinstance(answer, Mapping):
        return False
    ids = answer.get("ids")
    if isinstance(ids, list):
        return bool(ids) and all(isinstance(i, str) and i for i in ids)
    return isinstance(answer.get("id"), str) and bool(answer["id"])
