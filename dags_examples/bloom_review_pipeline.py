"""bloom_review_pipeline: a person reviews the images in Airflow's UI before anything is published.

    generate (BloomGenerateBatchOperator: one image per prompt, a JSON Lines manifest)
      -> review_1 (BloomImageReviewOperator: a Required Action with a thumbnail per image)
      -> edit_1 (BloomReviewEditBatchOperator: the images the reviewer asked to change, each edited
                 with the reviewer's own words as the prompt)
      -> review_2 (the edited images, asked again)
      -> publish (BloomDownloadImagesOperator: only the approved images)

Open Browse → Required Actions (or the review task's "Required Actions" tab) and choose "Approve all",
"Reject all", or fill the form and choose "Submit per-image decisions": ``reject`` lines
``3: off-brand colours`` and ``edit`` lines ``5: warmer light, no text`` (the number shown in the
review, or the image id). Every image not listed is approved. Rejected images are recorded in the
manifest with the reason and never downloaded; an edit asked in the last round (2) is recorded but
not made. Every decision, who made it and when is in the reviewed manifest (``review_2``'s
``manifest_path``; each record's ``review`` field, earlier rounds in ``review_history``).

Params: ``prompts``, ``review`` (False: approve everything without asking anyone, for runs with no
person present), ``output`` (where the approved files go). A review unanswered after 24 hours ends as
"Reject all": nothing is published without a look.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import AirflowSkipException
from airflow.sdk import Param, dag, task

from airflow_provider_bloom.operators.batch import BloomGenerateBatchOperator
from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator
from airflow_provider_bloom.operators.review import (
    BloomImageReviewOperator,
    BloomReviewEditBatchOperator,
    approved_records,
)

log = logging.getLogger(__name__)

PROMPTS = [
    "Spring collection lookbook cover, soft pastel palette",
    "Close-up of hands wrapping a gift with our ribbon",
    "Flat lay of travel essentials around a passport",
    "Seasonal newsletter header with falling leaves",
]
DEFAULT_OUTPUT = os.environ.get("BLOOM_OUTPUT_URL") or str(
    Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "bloom-output"
)
RUN_FOLDER = (
    "{{ params.output.rstrip('/') }}/review/{{ dag_run.run_id | replace(':', '-') | replace('+', '-') }}"
)


@dag(
    dag_id="bloom_review_pipeline",
    schedule=None,
    catchup=False,
    tags=["bloom", "example"],
    doc_md=__doc__,
    params={
        "prompts": Param(PROMPTS, type="array", items={"type": "string", "minLength": 1}, minItems=1),
        "review": Param(True, type="boolean", description="False: approve all without asking anyone"),
        "output": Param(DEFAULT_OUTPUT, type="string", minLength=1, description="Folder or storage URL"),
    },
    render_template_as_native_obj=True,  # the prompts arrive as a list, review as a bool
)
def bloom_review_pipeline() -> None:
    @task
    def rows(prompts: list[str], channels: tuple[str, ...] = ("feed", "story")) -> list[dict[str, Any]]:
        """One row per prompt, with the columns the reviewer sees beside each image."""
        return [{"prompt": p, "channel": channels[i % len(channels)]} for i, p in enumerate(prompts)]

    generate = BloomGenerateBatchOperator(
        task_id="generate",
        rows=rows("{{ params.prompts }}"),
        output_path=RUN_FOLDER + "/generate.jsonl",
        deferrable=True,
    )

    # [START howto_operator_bloom_image_review]
    review_1 = BloomImageReviewOperator(
        task_id="review_1",
        images=generate.output,  # the batch's summary: its manifest, one thumbnail per image
        subject="Review the new campaign images",
        body="Approve what may be published. Rejected images are never downloaded.",
        page_size=25,
        response_timeout=timedelta(hours=24),
        on_timeout="reject_all",  # unanswered: nothing is published without a look
        auto_approve="{{ not params.review }}",
        retries=2,  # a try failed by Airflow's answer-while-parking race asks again (docs/howto/review.md)
    )
    edit_1 = BloomReviewEditBatchOperator(
        task_id="edit_1",
        images=review_1.output,  # the reviewed manifest: the edit requests, with the reviewer's words
        output_path=RUN_FOLDER + "/edit_1.jsonl",
        deferrable=True,
    )
    review_2 = BloomImageReviewOperator(
        task_id="review_2",
        images=edit_1.output,  # only the edited images wait for review; nothing edited: nothing asked
        subject="Review the edited images",
        response_timeout=timedelta(hours=24),
        on_timeout="reject_all",
        auto_approve="{{ not params.review }}",
        retries=2,
    )
    # [END howto_operator_bloom_image_review]

    @task
    def approved(reviewed: dict[str, Any]) -> list[dict[str, Any]]:
        """The records the reviewers approved (the rest stay in the reviewed manifest, not downloaded)."""
        records = approved_records(reviewed)
        log.info("%d of %d record(s) approved", len(records), reviewed["records"])
        if not records:
            raise AirflowSkipException("Nothing was approved: nothing to publish")
        return records

    publish = BloomDownloadImagesOperator(
        task_id="publish",
        image_ids=approved(review_2.output),
        destination=RUN_FOLDER + "/files",
        manifest_path=RUN_FOLDER + "/published.jsonl",
    )

    @task
    def report(reviewed: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
        """Decisions and files of the run; the reviewed manifest has every decision and who made it."""
        summary = {
            "decisions": reviewed["decisions"],
            "files": files["files"],
            "reviewed": reviewed["manifest"],
        }
        log.info("Review pipeline: %s", summary)
        return summary

    report(review_2.output, publish.output)


bloom_review_pipeline()
