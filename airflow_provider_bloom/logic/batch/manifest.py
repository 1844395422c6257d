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
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_bloom.logic.batch.journal import BatchState, RowState
from airflow_provider_bloom.logic.provenance import from_manifest_record

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
    "request",
    "file",
    "files",
    "sizes",
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
    request: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One manifest record: ``base`` (the row's fields, or the carried source record) plus this step.

    ``request``: the step's request as sent, in Bloom's camelCase (kept as ``request``, snake_case,
    without the brand: what Bloom cannot tell later, e.g. a resize's target ratio).
    """
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
            "request": request_fields(request or {}),
        }
    )
    if state.variant_group_id is not None:
        record["variant_group_id"] = state.variant_group_id
    return record


def derived_base(source: Mapping[str, Any], source_image_id: str) -> dict[str, Any]:
    """The carried part of a post-processing record: the source record, its step added to ``lineage``."""
    lineage = list(source.get("lineage") or [])
    if source.get("operation"):
        request: Mapping[str, Any] = source["request"] if isinstance(source.get("request"), Mapping) else {}
        ids = source.get("image_ids") or [source_image_id]
        credits = source.get("credits")
        share = (
            credits / len(ids)
            if isinstance(credits, (int, float)) and not isinstance(credits, bool)
            else None
        )
        lineage.append(
            {
                "operation": source["operation"],
                "image_id": source_image_id,
                **request,
                "credits": _number(share),
            }
        )
    base = {k: v for k, v in source.items() if k not in STEP_FIELDS and k != "source_image_id"}
    base["lineage"] = lineage
    base["source_image_id"] = source_image_id
    return base


def source_image_size(base: Mapping[str, Any]) -> str | None:
    """The size class (``2K``/``4K``) of a post-processing record's source image, for its price.

    The row's own ``image_size`` column if it has one, else the size asked for by the latest earlier
    step that made an image (``lineage``), else Bloom's default (2K) when that step asked for none.
    None when the record tells nothing (a source given by id only): the price list then assumes 4K.
    """
    if isinstance(base.get("image_size"), str) and base["image_size"]:  # a CSV's empty cell: not given
        return str(base["image_size"])
    for step in reversed(base.get("lineage") or []):
        if not isinstance(step, Mapping):
            continue
        if isinstance(step.get("image_size"), str) and step["image_size"]:
            return str(step["image_size"])
        if step.get("operation") in ("images.generate", "images.edit"):
            return "2K"  # Bloom's default imageSize
    return None


def request_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """A request body (Bloom's camelCase) as manifest fields: snake_case, without the brand session."""
    return {
        re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value
        for key, value in body.items()
        if key != "brandSessionId" and value is not None
    }


def completed_images(record: Mapping[str, Any]) -> list[str]:
    """The completed image ids of a manifest record (all its ids when it carries no statuses)."""
    images = record.get("images")
    if isinstance(images, list) and images:
        return [str(i["id"]) for i in images if isinstance(i, Mapping) and i.get("status") == "completed"]
    if record.get("status") in (None, "completed"):
        return [str(i) for i in record.get("image_ids") or ()]
    return []


#: The fields of a per-image record (:func:`image_records`), in this order;
#: the row's own columns follow them.
IMAGE_FIELDS = (
    "row",
    "image_id",
    "status",
    "failure_reason",
    "prompt",
    "model",
    "image_size",
    "aspect_ratio",
    "reference_image_ids",
    "action",
    "operation",
    "source_image_id",
    "lineage",
    "variant_group_id",
    "attempts",
    "credits",
    "total_credits",
    "file",
    "bytes",
    "review",
)
#: Fields of a batch record that are not the row's own columns (they are in a per-image record another way).
_NOT_ROW_COLUMNS = frozenset(
    {*STEP_FIELDS, "row", "lineage", "source_image_id", "variant_group_id", "review", "image_ids"}
    | {"prompt", "aspect_ratio", "image_size", "model", "variant_count", "reference_image_ids"}
    | {"brand_session_id"}
)


def image_records(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One record per image of a batch manifest (every variant, every step's result), in row order.

    A batch record without images (refused, or its answer lost) gives one record with ``image_id``
    null, so that every row is accounted for. See ``docs/howto/manifest.md`` for the fields.
    """
    out: list[dict[str, Any]] = []
    ordered = sorted(records, key=lambda r: (not isinstance(r.get("row"), int), r.get("row") or 0))
    for record in ordered:
        images = {
            str(i.get("id")): i for i in record.get("images") or () if isinstance(i, Mapping) and i.get("id")
        }
        files = list(record.get("files") or ([record["file"]] if record.get("file") else []))
        sizes = list(record.get("sizes") or ([record.get("bytes")] if len(files) == 1 else []))
        done = completed_images(record)
        file_of = dict(zip(done, files, strict=False))
        size_of = dict(zip(done, sizes, strict=False))
        own = {k: v for k, v in record.items() if k not in _NOT_ROW_COLUMNS}
        ids: list[str | None] = [str(i) for i in record.get("image_ids") or ()]
        for image_id in ids or [None]:
            made = from_manifest_record(record, image_id or "")
            image = images.get(image_id or "", {})
            status = image.get("status") or record.get("status")
            earlier = [s.get("credits") for s in record.get("lineage") or () if isinstance(s, Mapping)]
            entry = {
                "row": record.get("row"),
                "image_id": image_id,
                "status": status,
                "failure_reason": image.get("failure_reason")
                or (record.get("failure_reason") if status != "completed" else None),
                **{k: made[k] for k in ("prompt", "model", "image_size", "aspect_ratio")},
                "reference_image_ids": _reference_ids(record),
                "action": made["action"],
                "operation": made["operation"],
                "source_image_id": made["source_image_id"],
                "lineage": made["lineage"],
                "variant_group_id": made["variant_group_id"],
                "attempts": record.get("attempts"),
                "credits": made["credits"],
                "total_credits": _total(made["credits"], earlier),
                "file": file_of.get(image_id or ""),
                "bytes": size_of.get(image_id or ""),
                "review": made["review"],
            }
            entry.update({(f"row_{k}" if k in entry else k): v for k, v in own.items()})
            out.append(entry)
    return out


def manifest_text(entries: Sequence[Mapping[str, Any]], name: str) -> str:
    """Per-image records as a file's text: a JSON array (indented) for a ``.json`` name, else JSON Lines."""
    if name.lower().endswith(".json"):
        return json.dumps(list(entries), indent=2, default=str) + "\n"
    return to_jsonl(entries)


def _reference_ids(record: Mapping[str, Any]) -> list[str] | None:
    request = record.get("request") if isinstance(record.get("request"), Mapping) else {}
    value = (request or {}).get("reference_image_ids") or record.get("reference_image_ids")
    return list(value) if isinstance(value, (list, tuple)) and value else None


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return round(value, 4) if isinstance(value, float) else value


def _total(credits: Any, earlier: Sequence[Any]) -> Any:
    parts = [credits, *earlier]
    if any(not isinstance(p, (int, float)) or isinstance(p, bool) for p in parts):
        return None
    return _number(float(sum(parts)))


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
    "IMAGE_FIELDS",
    "from_jsonl",
    "image_records",
    "manifest_text",
    "is_summary",
    "request_fields",
    "row_status",
    "step_record",
    "summary",
    "to_jsonl",
]
