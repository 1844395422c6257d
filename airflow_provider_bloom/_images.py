"""Small helpers on Bloom image records and id lists, shared by hook, operators, sensors and triggers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_bloom._spec import TERMINAL_IMAGE_STATUSES, check_uuid
from airflow_provider_bloom.exceptions import BloomInputError

#: The fields of an image record that go to XCom: small and JSON-native.
IMAGE_RECORD_FIELDS = (
    "id",
    "status",
    "imageUrl",
    "width",
    "height",
    "aspectRatio",
    "actionType",
    "variantGroupId",
    "failureReason",
    "prompt",
)


def is_terminal(record: Mapping[str, Any]) -> bool:
    return record.get("status") in TERMINAL_IMAGE_STATUSES


def slim_record(record: Mapping[str, Any], *, include_urls: bool = False) -> dict[str, Any]:
    """The XCom-sized view of an image record.

    ``imageUrl`` is kept when it is Bloom's short ``/img/{id}`` link; a signed
    (expiring) download URL is only kept when ``include_urls`` is True.
    """
    slim = {name: record.get(name) for name in IMAGE_RECORD_FIELDS}
    url = slim.get("imageUrl")
    if url and not include_urls and "/img/" not in str(url):
        slim["imageUrl"] = None
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
    seen: set[str] = set()
    unique = [i for i in out if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]
    if not unique:
        raise BloomInputError(field, "no image ids were given")
    return unique
