"""A DAG that defers many tasks at once: one generation per mapped task, each waiting for its image.

Used by the end-to-end test of the wait hub (tests/e2e/test_content_pipeline_e2e.py): every mapped task
posts one generation, then defers at once (``defer_after=0``) with ``wait_for_completion=True``, so that
the triggerer holds ``params.count`` Bloom waits on one key at the same time.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from airflow_provider_bloom.operators.images import BloomGenerateImageOperator

with DAG(
    dag_id="bloom_scale_waits",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"count": Param(100, type="integer", minimum=1, maximum=1000)},
    tags=["bloom", "test"],
) as dag:

    @task
    def prompts(params: dict | None = None) -> list[str]:
        return [f"scale test tile {n}" for n in range(int((params or {})["count"]))]

    BloomGenerateImageOperator.partial(
        task_id="generate_and_wait",
        aspect_ratio="1:1",
        wait_for_completion=True,
        deferrable=True,
        defer_after=0,
        wait_timeout=1200,
        retries=0,
    ).expand(prompt=prompts())
