"""Which images a review shows: those of a manifest that wait for a review, the round, the pages.

A review shows at most ``page_size`` images (default 25, at most 100); a larger batch is reviewed page by
page, one mapped review per page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.logic.batch.manifest import completed_images
from airflow_provider_bloom.logic.records import flatten_image_ids

DEFAULT_PAGE_SIZE = 25
#: More thumbnails than this make the Required Action page slow to load and to scroll.
MAX_PAGE_SIZE = 100


def pending_items(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The images of a manifest that wait for a review: completed, in a record without ``review``.

    Each is ``{"id", "record"}`` (the record's index in the manifest)."""
    items: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        if record.get("review"):
            continue
        items.extend({"id": image_id, "record": index} for image_id in completed_images(record))
    return items


def next_round(records: Sequence[Mapping[str, Any]]) -> int:
    """1 + the highest review round recorded in a manifest (``review`` and ``review_history``)."""
    rounds = [0]
    for record in records:
        for review in [record.get("review"), *(record.get("review_history") or [])]:
            if isinstance(review, Mapping) and isinstance(review.get("round"), int):
                rounds.append(review["round"])
    return max(rounds) + 1


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


def check_page_size(page_size: Any) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise BloomInputError(
            "page_size", f"must be a whole number from 1 to {MAX_PAGE_SIZE}; got {page_size!r}"
        )
    return page_size


def page_number(page: Any) -> int | None:
    """The page a review was given (1-based; a template may render it as text), or None for none."""
    value = page
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BloomInputError("page", f"must be a page number from 1; got {page!r}")
    return value


def page_of(
    items: list[dict[str, Any]], page: int | None, page_size: int
) -> tuple[list[dict[str, Any]], int, int]:
    """(the items on ``page``, the page, the number of pages); with no page, all items fit one page."""
    pages = page_count(len(items), page_size)
    if page is None:
        if pages > 1:
            raise BloomInputError(
                "page",
                f"{len(items)} images to review is more than page_size={page_size}: map the review "
                "over pages, e.g. BloomImageReviewOperator.partial(...).expand(page=pages) with "
                "pages = task(review_pages)(images, page_size), then merge_reviews "
                "(docs/howto/review.md)",
            )
        page = 1
    if page > pages:
        raise BloomInputError("page", f"is {page}, but there are {pages} page(s) of {page_size}")
    start = (page - 1) * page_size
    return items[start : start + page_size], page, pages


def given_items(value: Any) -> list[dict[str, Any]]:
    """The items to review when images are given as ids or records (not a manifest): one per image id,
    ``{"id", "given"}`` (the record it came from, or None)."""
    given = value if isinstance(value, (list, tuple)) else [value]
    items: dict[str, dict[str, Any]] = {}
    for entry in given:
        for image_id in flatten_image_ids(entry, "images"):
            items.setdefault(
                image_id, {"id": image_id, "given": dict(entry) if isinstance(entry, Mapping) else None}
            )
    return list(items.values())


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "check_page_size",
    "given_items",
    "next_round",
    "page_count",
    "page_number",
    "page_of",
    "pending_items",
]
