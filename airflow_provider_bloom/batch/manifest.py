"""The manifest of a batch: one JSON Lines record per row (generation) or per source image
(post-processing), and the small summary the task returns.

A generation record holds the row's own fields (request and user columns alike) and adds::

    row               the row's number (1 = the first row)
    operation         "images.generate"
    image_ids         the ids Bloom made for the row (one per variant)
    variant_group_id  Bloom's group of those variants
    images            [{"id", "status", "failure_reason"}] per image
    status            completed | partial | failed | pending | submitted | rejected | uncertain
    failure_reason    Bloom's reason for a failed image, or the error code of a refused request
    error             Bloom's message for a refused request, or why an answer is uncertain
    credits           credits charged by Bloom's published prices (0 when refused, null when uncertain)
    attempts          how many times the request went out (a 429 does not count)
    recovered         the ids were found in Bloom's list after the answer was lost

A post-processing record (resize, remove-background, vectorize, edit) carries the source record's
fields and names its source: ``source_image_id``, plus ``lineage`` (the earlier steps, oldest first:
``{"operation", "image_id"}``). Records that a step did not process (not selected, or their image did
not complete) are carried through unchanged, so the last manifest of a chain accounts for every row.

``status``: ``completed`` every image completed; ``partial`` some did; ``failed`` none did;
``pending`` still running when the wait ended; ``submitted`` accepted and not waited for;
``rejected`` Bloom refused the request (nothing charged); ``uncertain`` the answer was lost and
what it made could not be found for certain (the request was not sent again).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_bloom.batch.journal import BatchState, RowState

#: Fields a step writes (a later step replaces them; the rest of a record is carried through).
STEP_FIELDS = (
    "operation",
    "image_ids",
    "images",
    "status",
    "failure_reason",
    "error",
    "credits",
    "attempts",
    "recovered",
    "file",
    "bytes",
)
STATUSES = ("completed", "partial", "failed", "pending", "submitted", "rejected", "uncertain")


def row_status(state: RowState, statuses: Mapping[str, tuple[str, str | None]], waited: bool) -> str:
    """The status of one row from its journal state and its images' statuses."""
    if state.error_code is not None:
        return "rejected"
    if state.uncertain:
        return "uncertain"
    if not state.ids:
        return "pending"
    known = [statuses[i][0] for i in state.ids if i in statuses]
    if len(known) < len(state.ids):
        return "pending" if waited else "submitted"
    done = known.count("completed")
    if done == len(known):
        return "completed"
    return "partial" if done else "failed"


def step_record(
    base: Mapping[str, Any],
    state: RowState,
    statuses: Mapping[str, tuple[str, str | None]],
    *,
    operation: str,
    credits: int,
    waited: bool,
) -> dict[str, Any]:
    """One manifest record: ``base`` (the row's fields, or the carried source record) plus this step."""
    images = [
        {
            "id": i,
            "status": statuses.get(i, ("pending", None))[0],
            "failure_reason": statuses.get(i, ("", None))[1],
        }
        for i in state.ids or ()
    ]
    status = row_status(state, statuses, waited)
    reasons = [img["failure_reason"] for img in images if img["failure_reason"]]
    record = {k: v for k, v in base.items() if k not in STEP_FIELDS}
    record.update(
        {
            "operation": operation,
            "image_ids": list(state.ids or []),
            "images": images,
            "status": status,
            "failure_reason": state.error_code or (reasons[0] if reasons else None),
            "error": state.error,
            "credits": 0 if status == "rejected" else (None if status == "uncertain" else credits),
            "attempts": state.attempts,
            "recovered": state.recovered,
        }
    )
    if state.variant_group_id is not None:
        record["variant_group_id"] = state.variant_group_id
    return record


def derived_base(source: Mapping[str, Any], source_image_id: str) -> dict[str, Any]:
    """The carried part of a post-processing record: the source record, its step added to ``lineage``."""
    lineage = list(source.get("lineage") or [])
    if source.get("operation"):
        lineage.append({"operation": source["operation"], "image_id": source_image_id})
    base = {k: v for k, v in source.items() if k not in STEP_FIELDS and k != "source_image_id"}
    base["lineage"] = lineage
    base["source_image_id"] = source_image_id
    return base


def completed_images(record: Mapping[str, Any]) -> list[str]:
    """The completed image ids of a manifest record (all its ids when it carries no statuses)."""
    images = record.get("images")
    if isinstance(images, list) and images:
        return [str(i["id"]) for i in images if isinstance(i, Mapping) and i.get("status") == "completed"]
    if record.get("status") in (None, "completed"):
        return [str(i) for i in record.get("image_ids") or ()]
    return []


def to_jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(record, default=str, separators=(",", ":")) + "\n" for record in records)


def from_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def summary(
    manifest: str,
    records: Sequence[Mapping[str, Any]],
    operation: str,
    credits: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The task's return value: where the manifest is, and counts (small at any batch size).

    ``credits``: what this step spent (default: the sum over ``records``; a step that carries earlier
    records through passes its own sum, so that each step reports only its own spend).
    """
    counts = Counter(str(r.get("status")) for r in records)
    return {
        "manifest": manifest,
        "operation": operation,
        "records": len(records),
        "images": sum(len(r.get("image_ids") or ()) for r in records),
        "counts": {status: counts[status] for status in sorted(counts)},
        "credits": sum(int(r.get("credits") or 0) for r in records) if credits is None else credits,
        **extra,
    }


def is_summary(value: Any) -> bool:
    """True for a batch task's return value (a dict naming its manifest)."""
    return isinstance(value, Mapping) and isinstance(value.get("manifest"), str) and "counts" in value


__all__ = [
    "STATUSES",
    "STEP_FIELDS",
    "BatchState",
    "completed_images",
    "derived_base",
    "from_jsonl",
    "is_summary",
    "row_status",
    "step_record",
    "summary",
    "to_jsonl",
]
