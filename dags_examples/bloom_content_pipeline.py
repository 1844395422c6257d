"""bloom_content_pipeline: a batch of on-brand images from a prompts file, post-processed per channel.

    read_batch -> batch_credits -> check_credits -> generate (mapped, one task per row)
      -> wait_for_images (one deferrable sensor: waits in the triggerer, not in a worker slot)
      -> stories -> resize_stories (9:16, mapped) / products -> remove_backgrounds (mapped)
      -> collect -> download (to {{ params.output }}/<date>/) -> write_manifest (manifest.json + Asset event)

The prompts file ``bloom_content_prompts.csv`` sits beside this file: one row per image with the
columns ``prompt``, ``aspect_ratio`` (Bloom's ratios, e.g. ``4:5``), ``size`` (``2K``/``4K``) and
``channel``: ``story`` rows are re-framed to 9:16, ``product`` rows get their background removed,
any other channel (``feed``, ``banner``...) is used as generated.

Params: ``output``, the folder the files go to (a local path, or any ObjectStoragePath URL such as
``s3://aws_default@bucket/prefix``; default ``$BLOOM_OUTPUT_URL`` or ``$AIRFLOW_HOME/bloom-output``),
and ``prompts_file`` (another CSV with the same columns; a relative path is read from this folder).

Connection ``bloom_default``: host = Bloom's base URL, password = API key, extra ``brand_session_id`` =
the brand every image is generated for. Images that Bloom fails (e.g. ``content_safety``) are kept in
the manifest with their reason instead of failing the batch.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, ObjectStoragePath, Param, dag, get_current_context, task

from airflow_provider_bloom.operators.credits import estimate_credits
from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator
from airflow_provider_bloom.operators.images import (
    BloomGenerateImageOperator,
    BloomRemoveBackgroundOperator,
    BloomResizeImageOperator,
)
from airflow_provider_bloom.sensors.credits import BloomCreditsSensor
from airflow_provider_bloom.sensors.images import BloomImageSensor

DAG_FOLDER = Path(__file__).resolve().parent
PROMPTS_FILE = "bloom_content_prompts.csv"
COLUMNS = ("prompt", "aspect_ratio", "size", "channel")
STORY_ASPECT_RATIO = "9:16"
#: Credits of one background removal (Bloom's price list names none; one credit, like a 2K image).
REMOVE_BACKGROUND_CREDITS = 1
DEFAULT_OUTPUT = os.environ.get("BLOOM_OUTPUT_URL") or str(
    Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "bloom-output"
)
#: One folder per run date; ``ds`` is missing for runs triggered without a logical date.
RUN_FOLDER = "{{ params.output.rstrip('/') }}/{{ ds if ds is defined else (dag_run.run_after | ds) }}"
#: Updated (with the manifest's location) every time a batch lands; schedule other DAGs on it.
CONTENT_ASSET = Asset(name="bloom_content_images", uri="bloom://content-pipeline/images")


def read_prompts(path: str) -> list[dict[str, str]]:
    """The rows of the prompts CSV, checked (columns, prompt, ratio, size) before anything is spent."""
    file = Path(path) if Path(path).is_absolute() else DAG_FOLDER / path
    with file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{file.name}: missing column(s) {missing}; expected {list(COLUMNS)}")
        rows = [{c: (row.get(c) or "").strip() for c in COLUMNS} for row in reader]
    for number, row in enumerate(rows, start=2):
        empty = [c for c in COLUMNS if not row[c]]
        if empty:
            raise ValueError(f"{file.name} line {number}: empty {empty}")
        if row["channel"] == "story" and row["aspect_ratio"] == STORY_ASPECT_RATIO:
            raise ValueError(
                f"{file.name} line {number}: a story row is re-framed to 9:16; ask for another ratio"
            )
        try:  # the operator checks its arguments against Bloom's spec when it is built
            BloomGenerateImageOperator(task_id=f"check_line_{number}", **generation_request(row))
        except ValueError as exc:
            raise ValueError(f"{file.name} line {number}: {exc}") from None
    if not rows:
        raise ValueError(f"{file.name}: no prompts")
    return rows


def storage_path(location: str) -> ObjectStoragePath:
    """A local folder or an object-storage URL (``s3://conn_id@bucket/prefix`` names its connection)."""
    return ObjectStoragePath(location if "://" in location else Path(location).resolve().as_uri())


def generation_request(row: Mapping[str, str]) -> dict[str, str]:
    """The BloomGenerateImageOperator arguments of one prompts row."""
    return {"prompt": row["prompt"], "aspect_ratio": row["aspect_ratio"], "image_size": row["size"]}


def _by_id(records: Sequence[Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any]]:
    return {r["id"]: r for r in records or [] if isinstance(r, Mapping) and r.get("id")}


def _outputs(mapped: Any) -> list[Any]:
    """A mapped task's outputs in map-index order (nothing when it had no image to process)."""
    return list(mapped) if mapped is not None else []


@dag(
    dag_id="bloom_content_pipeline",
    schedule=None,  # e.g. "@daily" for a daily batch
    catchup=False,
    max_active_runs=1,
    tags=["bloom", "example"],
    doc_md=__doc__,
    params={
        "output": Param(DEFAULT_OUTPUT, type="string", minLength=1, description="Folder or storage URL"),
        "prompts_file": Param(PROMPTS_FILE, type="string", minLength=1, description="CSV of prompts"),
    },
)
def bloom_content_pipeline() -> None:
    @task
    def read_batch(prompts_file: str) -> list[dict[str, str]]:
        """The rows of the prompts file (checked before anything is spent)."""
        return read_prompts(prompts_file)

    @task
    def batch_credits(rows: list[dict[str, str]]) -> int:
        """What the whole batch costs: generations, story resizes and background removals."""
        credits = sum(estimate_credits(1, r["size"]) for r in rows)
        credits += sum(estimate_credits(1, r["size"]) for r in rows if r["channel"] == "story")
        return credits + REMOVE_BACKGROUND_CREDITS * sum(r["channel"] == "product" for r in rows)

    rows = read_batch(prompts_file="{{ params.prompts_file }}")

    # Fails at once, with the numbers, when the balance cannot pay for the batch (nothing is spent).
    check_credits = BloomCreditsSensor(task_id="check_credits", required_credits=batch_credits(rows))

    # One generation per row (dynamic task mapping); each returns its new image ids.
    generate = BloomGenerateImageOperator.partial(task_id="generate").expand_kwargs(
        rows.map(generation_request)
    )

    # One sensor for the whole batch: it defers to the triggerer, which long-polls Bloom with all ids.
    wait_for_images = BloomImageSensor(
        task_id="wait_for_images",
        image_ids=generate.output,
        deferrable=True,
        on_failure="ignore",  # failed images go to the manifest with their reason
        timeout=3600,
    )

    @task
    def completed_images(
        channel: str,
        rows: list[dict[str, str]],
        generated: Sequence[list[str]],
        records: list[dict[str, Any]],
    ) -> list[str]:
        """The completed images of one channel (they need post-processing)."""
        status = _by_id(records)
        return [
            image_id
            for row, ids in zip(rows, generated, strict=True)
            if row["channel"] == channel
            for image_id in ids
            if status[image_id].get("status") == "completed"
        ]

    generated, records = generate.output, wait_for_images.output
    stories = completed_images.override(task_id="stories")("story", rows, generated, records)
    products = completed_images.override(task_id="products")("product", rows, generated, records)

    # One task per image (skipped when the channel has none); each waits for its result deferred.
    resize_stories = BloomResizeImageOperator.partial(
        task_id="resize_stories",
        target_aspect_ratio=STORY_ASPECT_RATIO,
        wait_for_completion=True,
        deferrable=True,
    ).expand(image_ids=stories)
    remove_backgrounds = BloomRemoveBackgroundOperator.partial(
        task_id="remove_backgrounds", wait_for_completion=True, deferrable=True
    ).expand(image_ids=products)

    @task(multiple_outputs=True, trigger_rule="none_failed")
    def collect(
        rows: list[dict[str, str]],
        generated: Sequence[list[str]],
        records: list[dict[str, Any]],
        stories: list[str],
        resized: Any,
        products: list[str],
        cutouts: Any,
    ) -> dict[str, Any]:
        """The final image of every row (post-processed where its channel asks for it)."""
        # Mapped outputs come in map-index order, i.e. in the order of the source ids.
        replaced: dict[str, Mapping[str, Any]] = {}
        for sources, results in ((stories, resized), (products, cutouts)):
            for source_id, result in zip(sources or [], _outputs(results), strict=True):
                replaced[source_id] = result[0]
        status = _by_id(records)
        entries = []
        for number, (row, ids) in enumerate(zip(rows, generated, strict=True)):
            for source_id in ids:
                final = replaced.get(source_id, status[source_id])
                entries.append(
                    {
                        "row": number,
                        **row,
                        "source_image_id": source_id,
                        "image_id": final["id"],
                        "action": final.get("actionType"),
                        "image_aspect_ratio": final.get("aspectRatio"),
                        "status": final.get("status"),
                        "failure_reason": final.get("failureReason"),
                    }
                )
        completed = [e["image_id"] for e in entries if e["status"] == "completed"]
        if not completed:
            reasons = sorted({str(e["failure_reason"]) for e in entries})
            raise RuntimeError(f"None of the {len(entries)} images completed (reasons: {reasons})")
        return {"entries": entries, "image_ids": completed}

    final = collect(
        rows,
        generated,
        records,
        stories,
        resize_stories.output,
        products,
        remove_backgrounds.output,
    )

    download = BloomDownloadImagesOperator(
        task_id="download",
        image_ids=final["image_ids"],
        destination=RUN_FOLDER,
        name_template="{index:02d}-{image_id}{ext}",
    )

    @task(outlets=[CONTENT_ASSET])
    def write_manifest(entries: list[dict[str, Any]], files: list[str], folder: str) -> list[dict[str, Any]]:
        """manifest.json beside the images (prompt, channel, image id, status, file, bytes)."""
        paths = iter(files)
        for entry in entries:
            path = storage_path(next(paths)) if entry["status"] == "completed" else None
            entry["file"] = str(path) if path is not None else None
            entry["bytes"] = path.stat()["size"] if path is not None else None
        manifest = storage_path(folder) / "manifest.json"
        manifest.write_text(json.dumps(entries, indent=2))
        context = get_current_context()
        context["outlet_events"][CONTENT_ASSET].extra = {
            "manifest": str(manifest),
            "images": sum(e["status"] == "completed" for e in entries),
        }
        return entries

    write_manifest(final["entries"], download.output, folder=RUN_FOLDER)

    check_credits >> generate


bloom_content_pipeline()
