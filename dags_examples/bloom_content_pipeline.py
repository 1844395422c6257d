"""bloom_content_pipeline: a batch of on-brand images from a prompts file, post-processed per channel.

    read_batch -> batch_credits -> check_credits
      -> generate (one batch task for every row: submits at the key's rate, waits in the triggerer)
      -> resize_stories (9:16, one batch task) -> remove_backgrounds (one batch task)
      -> download (to {{ params.output }}/<date>/) -> write_manifest (manifest.json, one record per image,
         in the provider's format: BloomWriteManifestOperator; updates an Asset)
      -> credits_report (what the run spent, by task and kind, checked against the balance drop)

No task per prompt: each step is one task, whatever the number of rows, and hands the next one its
manifest (JSON Lines, one record per row, beside the images). The same DAG runs a catalogue of
thousands of rows; ``bloom_catalogue_nightly`` shows one.

The prompts file ``bloom_content_prompts.csv`` sits beside this file: one row per image with the
columns ``prompt``, ``aspect_ratio`` (Bloom's ratios, e.g. ``4:5``), ``image_size`` (``2K``/``4K``) and
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
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, Param, dag, task

from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.logic.prices import credits_for
from airflow_provider_bloom.operators.batch import (
    BloomGenerateBatchOperator,
    BloomRemoveBackgroundBatchOperator,
    BloomResizeBatchOperator,
)
from airflow_provider_bloom.operators.credits import BloomCreditsReportOperator
from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator
from airflow_provider_bloom.operators.images import BloomGenerateImageOperator
from airflow_provider_bloom.operators.manifest import BloomWriteManifestOperator
from airflow_provider_bloom.sensors.credits import BloomCreditsSensor

DAG_FOLDER = Path(__file__).resolve().parent
PROMPTS_FILE = "bloom_content_prompts.csv"
COLUMNS = ("prompt", "aspect_ratio", "image_size", "channel")
STORY_ASPECT_RATIO = "9:16"
DEFAULT_OUTPUT = os.environ.get("BLOOM_OUTPUT_URL") or str(
    Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "bloom-output"
)
#: One folder per run date; ``ds`` is missing for runs triggered without a logical date.
RUN_FOLDER = "{{ params.output.rstrip('/') }}/{{ ds if ds is defined else (dag_run.run_after | ds) }}"


def step_manifest(step: str) -> str:
    """Where a step's manifest goes: beside the images, in a hidden folder (a template, like RUN_FOLDER)."""
    return f"{RUN_FOLDER}/.bloom/{step}.jsonl"


#: Updated (with the manifest's location) every time a batch lands; schedule other DAGs on it.
CONTENT_ASSET = Asset(name="bloom_content_images", uri="bloom://content-pipeline/images")


def prompts_path(path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else DAG_FOLDER / path


def read_prompts(path: str) -> list[dict[str, str]]:
    """The rows of the prompts CSV, checked (columns, prompt, ratio, size) before anything is spent."""
    file = prompts_path(path)
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


def generation_request(row: Mapping[str, str]) -> dict[str, str]:
    """The BloomGenerateImageOperator arguments of one prompts row."""
    return {"prompt": row["prompt"], "aspect_ratio": row["aspect_ratio"], "image_size": row["image_size"]}


def batch_cost(rows: list[dict[str, str]], prices: Mapping[str, Any] | None = None) -> int:
    """What the whole batch costs by the provider's price list (``prices``: the connection's overrides):
    generations, story resizes, cut-outs."""
    credits = 0
    for row in rows:
        credits += credits_for("images.generate", {"imageSize": row["image_size"]}, prices=prices)
        if row["channel"] == "story":  # a resize costs like a generation of its source's size
            credits += credits_for("images.resize", source_size=row["image_size"], prices=prices)
        if row["channel"] == "product":
            credits += credits_for("images.removeBackground", prices=prices)
    return credits


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
    def read_batch(prompts_file: str) -> dict[str, Any]:
        """Check the prompts file before anything is spent; hand on its location and its cost."""
        rows = read_prompts(prompts_file)
        prices = BloomHook().settings.prices  # the connection's "prices" extra, if any
        return {
            "file": str(prompts_path(prompts_file)),
            "rows": len(rows),
            "credits": batch_cost(rows, prices),
        }

    batch = read_batch(prompts_file="{{ params.prompts_file }}")

    # Fails at once, with the numbers, when the balance cannot pay for the batch (nothing is spent).
    check_credits = BloomCreditsSensor(task_id="check_credits", required_credits=batch["credits"])

    # One task for every row: paced at the connection's requests_per_minute, journalled (a retry never
    # pays twice), waiting in the triggerer; its output is the manifest's location and counts.
    generate = BloomGenerateBatchOperator(
        task_id="generate",
        rows=batch["file"],
        output_path=step_manifest("generate"),
        deferrable=True,
    )
    # Stories re-framed to 9:16, product shots cut out; every other row is carried through unchanged.
    resize_stories = BloomResizeBatchOperator(
        task_id="resize_stories",
        images=generate.output,
        where={"channel": "story"},
        target_aspect_ratio=STORY_ASPECT_RATIO,
        output_path=step_manifest("resize_stories"),
        deferrable=True,
    )
    remove_backgrounds = BloomRemoveBackgroundBatchOperator(
        task_id="remove_backgrounds",
        images=resize_stories.output,
        where={"channel": "product"},
        output_path=step_manifest("remove_backgrounds"),
        deferrable=True,
    )
    # Every completed image of the last manifest, and that manifest with each row's file and size.
    # [START download]
    download = BloomDownloadImagesOperator(
        task_id="download",
        image_ids=remove_backgrounds.output,
        destination=RUN_FOLDER,
        name_template="{index:02d}-{image_id}{ext}",
        manifest_path=step_manifest("download"),
    )
    # [END download]

    # manifest.json beside the images: one record per image (prompt, channel, model, size, action,
    # source image, status, credits, file, bytes...), in the provider's format; updates CONTENT_ASSET.
    # [START write_manifest]
    manifest = BloomWriteManifestOperator(
        task_id="write_manifest",
        manifest=download.output,
        path=RUN_FOLDER + "/manifest.json",
        return_records=True,  # a dozen rows: the demo prints them (a big batch returns the summary)
        outlets=[CONTENT_ASSET],
    )
    # [END write_manifest]

    # [START credits_report]
    # What the run spent, by task and by kind of call (each paid task pushes XCom "bloom_credits"),
    # compared with the drop of the balance that check_credits read before anything was spent.
    # Pass key_shared=True when other runs or people spend on the same workspace at the same time.
    credits_report = BloomCreditsReportOperator(task_id="credits_report", start_balance=check_credits.output)
    # [END credits_report]

    check_credits >> generate
    manifest >> credits_report


bloom_content_pipeline()
