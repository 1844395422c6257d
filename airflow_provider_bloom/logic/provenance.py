"""Provenance of Bloom images: the record of how each image was made, built from what the provider
sent (no I/O, no Airflow).

Bloom's image record has no link from an edit, resize, cut-out or SVG to its source, and no model or
size, so "which prompt and which original made this file" can only be answered from what the provider
wrote down when it made the call. Every operator that creates images records one **provenance record**
per new image (:func:`provenance`):

``image_id``, ``operation`` (``images.generate``...), ``action`` (Bloom's ``actionType``: ``generation``,
``edit``, ``resize``, ``remove-background``, ``vectorize``), ``prompt`` and ``model`` (of the generation or
edit that made the pixels: a resize keeps its source's), ``image_size``, ``aspect_ratio``,
``source_image_id`` (the image it was made from), ``lineage`` (every earlier step, oldest first:
``[{"operation", "image_id"}]``), ``variant_group_id``, ``credits`` (by Bloom's published prices), and
``review`` (the human review's decision, where there was one).

A generation's records come from its request (:func:`generation_provenance`), a derived image's from its
request and its source's record (:func:`derived_provenance`), a batch image's from its manifest record
(:func:`from_manifest_record`), and what Bloom's own record tells fills the gaps
(:func:`from_bloom_record`, :func:`merged`). How the records travel between tasks (XCom) and into
OpenLineage events is :mod:`airflow_provider_bloom.lineage`. An Asset event's ``extra`` lists at most
:data:`MAX_EXTRA_IMAGES` images (:func:`asset_extra`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_bloom.logic.prices import credits_for

#: Images listed in an Asset event's ``extra`` at most.
MAX_EXTRA_IMAGES = 50
#: Bloom's ``actionType`` of the image each charged operation makes.
ACTIONS = {
    "images.generate": "generation",
    "images.edit": "edit",
    "images.resize": "resize",
    "images.removeBackground": "remove-background",
    "images.vectorize": "vectorize",
}
#: Bloom's defaults when a request leaves them out (its spec: model "pro", imageSize "2K").
DEFAULT_MODEL = "pro"
DEFAULT_IMAGE_SIZE = "2K"
#: The fields of a provenance record, in order.
FIELDS = (
    "image_id",
    "operation",
    "action",
    "prompt",
    "model",
    "image_size",
    "aspect_ratio",
    "source_image_id",
    "lineage",
    "variant_group_id",
    "credits",
    "review",
)
#: Operations whose request chooses the model and size (the others keep their source's).
_GENERATIVE = ("images.generate", "images.edit")
#: Provenance fields a step's request may set (a resize sets the ratio through ``target_aspect_ratio``).
_CHAIN_FIELDS = (
    ("prompt", ("prompt",)),
    ("model", ("model",)),
    ("image_size", ("image_size",)),
    ("aspect_ratio", ("target_aspect_ratio", "aspect_ratio")),
)


def provenance(
    image_id: str,
    operation: str,
    *,
    prompt: str | None = None,
    model: str | None = None,
    image_size: str | None = None,
    aspect_ratio: str | None = None,
    source_image_id: str | None = None,
    lineage: Sequence[Mapping[str, Any]] = (),
    variant_group_id: str | None = None,
    credits: float | None = None,
    review: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One image's provenance record (see the module's docstring for the fields)."""
    return {
        "image_id": str(image_id),
        "operation": operation,
        "action": ACTIONS.get(operation, operation),
        "prompt": prompt,
        "model": model,
        "image_size": image_size,
        "aspect_ratio": aspect_ratio,
        "source_image_id": source_image_id,
        "lineage": [dict(step) for step in lineage],
        "variant_group_id": variant_group_id,
        "credits": credits,
        "review": dict(review) if review else None,
    }


def price(
    operation: str,
    body: Mapping[str, Any],
    source_size: str | None = None,
    prices: Mapping[str, Any] | None = None,
) -> float | None:
    """What one request costs by the provider's price list (:mod:`airflow_provider_bloom.logic.prices`;
    ``prices``: the connection's overrides), or None when it cannot be priced."""
    try:
        return credits_for(operation, body, source_size=source_size, prices=prices)
    except (TypeError, ValueError):
        return None


def generation_provenance(
    body: Mapping[str, Any],
    ids: Sequence[str],
    variant_group_id: str | None,
    credits: float | None = None,
    prices: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The records of the images one generation made (``body``: the request as sent, camelCase;
    ``credits``: what the request cost, by default its price by ``prices``; shared by its variants)."""
    each = _share(price("images.generate", body, prices=prices) if credits is None else credits, len(ids))
    return [
        provenance(
            image_id,
            "images.generate",
            prompt=body.get("prompt"),
            model=body.get("model") or DEFAULT_MODEL,
            image_size=body.get("imageSize") or DEFAULT_IMAGE_SIZE,
            aspect_ratio=body.get("aspectRatio"),
            variant_group_id=variant_group_id,
            credits=each,
        )
        for image_id in ids
    ]


def derived_provenance(
    operation: str,
    body: Mapping[str, Any],
    image_id: str,
    source_image_id: str,
    source: Mapping[str, Any] | None,
    credits: float | None,
) -> dict[str, Any]:
    """The record of an image made from ``source_image_id`` (edit, resize, remove-background, vectorize).

    ``source``: the source's own provenance record when one is known (it carries the prompt, model and
    lineage of the chain); without it only what this call says is recorded, plus the source's id.
    """
    source = source or {}
    steps = list(source.get("lineage") or [])
    if source.get("operation"):
        steps.append({"operation": source["operation"], "image_id": source_image_id})
    generative = operation in _GENERATIVE
    return provenance(
        image_id,
        operation,
        prompt=body.get("prompt") if generative else source.get("prompt"),
        model=(body.get("model") or DEFAULT_MODEL) if generative else source.get("model"),
        image_size=(body.get("imageSize") or DEFAULT_IMAGE_SIZE) if generative else source.get("image_size"),
        aspect_ratio=body.get("targetAspectRatio") or source.get("aspect_ratio"),
        source_image_id=source_image_id,
        lineage=steps,
        credits=credits,
    )


def from_manifest_record(record: Mapping[str, Any], image_id: str) -> dict[str, Any]:
    """The provenance of one image of a batch manifest record.

    The prompt, model, size and ratio are the latest ones along the record's chain: this step's
    ``request``, then the steps in ``lineage`` (newest first: an edit's prompt, a resize's target
    ratio), then the row's own fields, then Bloom's defaults where a generation or edit left them out.
    """
    operation = str(record.get("operation") or "images.generate")
    own: Mapping[str, Any] = record["request"] if isinstance(record.get("request"), Mapping) else {}
    steps = [
        *(s for s in record.get("lineage") or () if isinstance(s, Mapping)),
        {**own, "operation": operation},
    ]
    found: dict[str, Any] = {}
    for step in reversed(steps):
        for key, names in _CHAIN_FIELDS:
            value = next((step[n] for n in names if step.get(n) is not None), None)
            if key not in found and value is not None:
                found[key] = value
    generative = any(step.get("operation") in _GENERATIVE for step in steps) or "prompt" in record
    ids = record.get("image_ids") or []
    return provenance(
        image_id,
        operation,
        prompt=found.get("prompt", record.get("prompt")),
        model=found.get("model") or record.get("model") or (DEFAULT_MODEL if generative else None),
        image_size=found.get("image_size")
        or record.get("image_size")
        or (DEFAULT_IMAGE_SIZE if generative else None),
        aspect_ratio=found.get("aspect_ratio") or record.get("aspect_ratio"),
        source_image_id=record.get("source_image_id"),
        lineage=[{"operation": s.get("operation"), "image_id": s.get("image_id")} for s in steps[:-1]],
        variant_group_id=record.get("variant_group_id"),
        credits=_share(record.get("credits"), len(ids) or 1),
        review=record.get("review") if isinstance(record.get("review"), Mapping) else None,
    )


def from_bloom_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """What Bloom's own record of an image tells: prompt, ratio, action, variant group (no model,
    size or source)."""
    action = record.get("actionType")
    operation = next((op for op, name in ACTIONS.items() if name == action), str(action or "unknown"))
    out = provenance(
        str(record.get("id")),
        operation,
        prompt=record.get("prompt"),
        aspect_ratio=record.get("aspectRatio"),
        variant_group_id=record.get("variantGroupId"),
    )
    if action is None:
        out["action"] = record.get("source")  # uploaded / scraped images carry no action
    return out


def merged(recorded: Mapping[str, Any] | None, bloom: Mapping[str, Any] | None) -> dict[str, Any]:
    """``recorded`` (what the provider wrote down) with gaps filled from Bloom's record."""
    out = dict(bloom or {})
    for key, value in (recorded or {}).items():
        if value not in (None, [], {}) or key not in out:
            out[key] = value
    return out


def index(records: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Provenance records by image id (lists, nested lists of XCom pulls, and None are accepted)."""
    out: dict[str, dict[str, Any]] = {}
    stack = [records]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            if item.get("image_id"):
                out.setdefault(str(item["image_id"]), dict(item))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
    return out


def bounded(images: Sequence[Mapping[str, Any]], limit: int) -> dict[str, Any]:
    """At most ``limit`` records, and how many there were: ``{"images", "total", "truncated"}``."""
    return {
        "images": [dict(i) for i in images[:limit]],
        "total": len(images),
        "truncated": len(images) > limit,
    }


def asset_extra(records: Sequence[Mapping[str, Any]], **more: Any) -> dict[str, Any]:
    """An Asset event's ``extra``: one image's record as is, or a bounded list (:data:`MAX_EXTRA_IMAGES`)."""
    if len(records) == 1 and not more:
        return {"bloom_image_id": records[0].get("image_id"), "bloom_provenance": dict(records[0])}
    return {**more, "bloom_provenance": bounded(records, MAX_EXTRA_IMAGES)}


def manifest_images(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The provenance of every image a batch manifest's records name (carried-through ones included)."""
    return [from_manifest_record(r, str(i)) for r in records for i in r.get("image_ids") or ()]


def _share(credits: Any, count: int) -> float | None:
    if credits is None or isinstance(credits, bool) or not isinstance(credits, (int, float)):
        return None
    each = credits / max(count, 1)
    return int(each) if float(each).is_integer() else round(each, 4)


__all__ = [
    "ACTIONS",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_MODEL",
    "FIELDS",
    "MAX_EXTRA_IMAGES",
    "asset_extra",
    "bounded",
    "derived_provenance",
    "from_bloom_record",
    "from_manifest_record",
    "generation_provenance",
    "index",
    "manifest_images",
    "merged",
    "price",
    "provenance",
]
