"""bloom_catalogue_nightly: a catalogue of thousands of products, three channels each, in five tasks.

    generate (every row of the catalogue CSV: one task, paced at the key's rate, waits in the triggerer)
      -> resize_stories (9:16) -> cut_out_products (background removed)
      -> download (every completed image, and the manifest of the files) -> report (counts and credits)

``bloom_catalogue.csv`` beside this file is made by ``scripts/make_catalogue.py``: 1,000 products x
``feed`` / ``story`` / ``product`` = 3,000 rows, with the columns ``sku``, ``product``, ``channel``,
``prompt``, ``aspect_ratio`` and ``image_size``. ``sku``, ``product`` and ``channel`` are yours: they
travel with each image through every manifest, so each file can be traced to its product and prompt.

How long it takes is set by the connection's ``requests_per_minute`` (keep it plus
``wait_requests_per_minute`` within your key's limit; Bloom documents 120 a minute, and the docs say
how to size both): at 60 a minute, 3,000 generations take 50 minutes and the 2,000 post-processing
requests 34 more. ``max_credits`` stops the run before anything is spent when the catalogue costs more.
A worker killed mid-batch costs nothing extra: the retry resumes with the rows not yet sent.

Params: ``catalogue`` (a CSV or JSON Lines file: a path, relative to this folder, or any object-storage
URL), ``output`` (a folder or storage URL; default ``$BLOOM_OUTPUT_URL`` or
``$AIRFLOW_HOME/bloom-output``), ``max_credits``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_bloom.operators.batch import (
    BloomGenerateBatchOperator,
    BloomRemoveBackgroundBatchOperator,
    BloomResizeBatchOperator,
)
from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator

log = logging.getLogger(__name__)

CATALOGUE = "bloom_catalogue.csv"
DEFAULT_OUTPUT = os.environ.get("BLOOM_OUTPUT_URL") or str(
    Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "bloom-output"
)
#: One folder per night; ``ds`` is missing for runs triggered without a logical date.
NIGHT = "{{ params.output.rstrip('/') }}/catalogue/{{ ds if ds is defined else (dag_run.run_after | ds) }}"


@dag(
    dag_id="bloom_catalogue_nightly",
    schedule=None,  # "@daily" in production: examples spend nothing until you trigger them
    catchup=False,
    max_active_runs=1,
    tags=["bloom", "example"],
    doc_md=__doc__,
    params={
        "catalogue": Param(CATALOGUE, type="string", minLength=1, description="CSV or JSON Lines of rows"),
        "output": Param(DEFAULT_OUTPUT, type="string", minLength=1, description="Folder or storage URL"),
        "max_credits": Param(6000, type="integer", minimum=0, description="Refuse a costlier catalogue"),
    },
    render_template_as_native_obj=True,  # max_credits arrives as a number
)
def bloom_catalogue_nightly() -> None:
    # [START howto_operator_bloom_generate_batch]
    generate = BloomGenerateBatchOperator(
        task_id="generate",
        rows="{{ params.catalogue }}",  # a CSV beside the DAG file, or s3://..., gs://...
        defaults={"model": "standard"},  # for rows that leave a field empty
        max_credits="{{ params.max_credits }}",
        output_path=NIGHT + "/generate.jsonl",
        deferrable=True,
        retries=2,  # a retry resumes: it never pays for a row twice
    )
    # [END howto_operator_bloom_generate_batch]

    # [START howto_operator_bloom_post_process_batch]
    resize_stories = BloomResizeBatchOperator(
        task_id="resize_stories",
        images=generate.output,  # the batch's summary: its manifest's location and counts
        where={"channel": "story"},  # other rows are carried through unchanged
        target_aspect_ratio="9:16",
        output_path=NIGHT + "/resize_stories.jsonl",
        deferrable=True,
        retries=2,
    )
    cut_out_products = BloomRemoveBackgroundBatchOperator(
        task_id="cut_out_products",
        images=resize_stories.output,
        where={"channel": "product"},
        output_path=NIGHT + "/cut_out_products.jsonl",
        deferrable=True,
        retries=2,
    )
    download = BloomDownloadImagesOperator(
        task_id="download",
        image_ids=cut_out_products.output,  # every completed image of the manifest
        destination=NIGHT + "/files",
        name_template="{image_id}{ext}",
        manifest_path=NIGHT + "/manifest.jsonl",
    )
    # [END howto_operator_bloom_post_process_batch]

    @task
    def report(
        generated: dict[str, Any], stories: dict[str, Any], cutouts: dict[str, Any], files: dict[str, Any]
    ) -> dict[str, Any]:
        """What the night made and spent (the manifests hold the details, one record per row)."""
        credits = {step["operation"]: step["credits"] for step in (generated, stories, cutouts)}
        summary = {
            "rows": generated["records"],
            "statuses": files["counts"],
            "files": files["files"],
            "credits": credits,
            "total_credits": sum(credits.values()),
            "manifest": files["manifest"],
        }
        log.info("Catalogue night: %s", summary)
        return summary

    report(generate.output, resize_stories.output, cut_out_products.output, download.output)


bloom_catalogue_nightly()
