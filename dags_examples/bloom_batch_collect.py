"""bloom_batch_collect: fire a batch of generations, then collect them all with one sensor.

    fire (one mapped BloomGenerateImageOperator per prompt; each returns at once with its ids)
      -> collect (one deferrable BloomImageSensor for every id: GET /images?ids=...&wait=true)
      -> summarize

The pattern of Bloom's automation guide: start everything first, then wait for the whole batch with a
long-poll on up to 50 ids per request, instead of waiting image by image. The waiting happens in the
triggerer, so no worker slot is held however long Bloom takes. One task per prompt suits a handful of
prompts; for hundreds or thousands, ``BloomGenerateBatchOperator`` does the whole batch in one task (see
``bloom_catalogue_nightly``).

Params: ``prompts`` (a list), ``aspect_ratio``, ``variant_count`` (1-5 images per prompt; each costs
like one image). Connection ``bloom_default`` (brand from its ``brand_session_id`` extra).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from airflow_provider_bloom.operators.images import BloomGenerateImageOperator
from airflow_provider_bloom.sensors.images import BloomImageSensor

log = logging.getLogger(__name__)

PROMPTS = [
    "Spring collection lookbook cover, soft pastel palette",
    "Close-up of hands wrapping a gift with our ribbon",
    "Flat lay of travel essentials around a passport",
    "Team photo style illustration of a friendly support desk",
    "Seasonal newsletter header with falling leaves",
    "Product teaser silhouette behind frosted glass",
]


@dag(
    dag_id="bloom_batch_collect",
    schedule=None,
    catchup=False,
    tags=["bloom", "example"],
    doc_md=__doc__,
    params={
        "prompts": Param(PROMPTS, type="array", items={"type": "string", "minLength": 1}, minItems=1),
        "aspect_ratio": Param("1:1", type="string", description="One of Bloom's ratios, e.g. 1:1, 4:5, 16:9"),
        "variant_count": Param(1, type="integer", minimum=1, maximum=5),
    },
)
def bloom_batch_collect() -> None:
    @task
    def batch() -> list[str]:
        """The prompts of this run (the ``prompts`` param)."""
        return list(get_current_context()["params"]["prompts"])

    fire = BloomGenerateImageOperator.partial(
        task_id="fire",
        aspect_ratio="{{ params.aspect_ratio }}",
        variant_count="{{ params.variant_count }}",
    ).expand(prompt=batch())

    collect = BloomImageSensor(
        task_id="collect",
        image_ids=fire.output,  # every id of every mapped generation, flattened
        deferrable=True,
        on_failure="ignore",
        timeout=3600,
    )

    @task
    def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
        """How the batch came out: counts per status, and why images failed."""
        statuses = Counter(r["status"] for r in records)
        failed = {r["id"]: r.get("failureReason") for r in records if r["status"] == "failed"}
        log.info("%d image(s): %s; failed: %s", len(records), dict(statuses), failed or "none")
        return {"total": len(records), "statuses": dict(statuses), "failed": failed}

    summarize(collect.output)


bloom_batch_collect()
