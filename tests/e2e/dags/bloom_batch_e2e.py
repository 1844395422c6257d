"""DAGs of the batch operator's end-to-end tests (tests/e2e/test_batch_e2e.py) and its benchmark
(bench/bench_batch.py).

Each DAG is one ``BloomGenerateBatchOperator`` task reading its rows from a CSV file and writing its
manifest where the run's params say (``rows``, ``output``); the connection sets the pace
(``requests_per_minute``), so each DAG names its own connection:

* ``bloom_batch_e2e_large``: deferrable with ``defer_after=0``, on ``bloom_batch_large``: more rows than
  ``[core] max_map_length`` in one task instance;
* ``bloom_batch_e2e_resume``: ``retries=1`` with a short ``retry_delay``, on ``bloom_batch_resume``: the
  test SIGKILLs the task's process mid-submission and the retry resumes from the journal;
* ``bloom_batch_bench``: deferrable, on ``bloom_batch_bench`` (the benchmark's deployment sets it);
* ``bloom_batch_bench_mapped``: the same rows the old way, for the benchmark's comparison: one mapped
  ``BloomGenerateImageOperator`` per row (each returns at once with its ids), then one deferrable
  ``BloomImageSensor`` for every id (``dags_examples/bloom_batch_collect.py``). Needs ``[core]
  max_map_length`` >= the number of rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from airflow_provider_bloom.operators.batch import BloomGenerateBatchOperator
from airflow_provider_bloom.operators.images import BloomGenerateImageOperator
from airflow_provider_bloom.sensors.images import BloomImageSensor


def batch_dag(dag_id: str, conn_id: str, *, deferrable: bool, retries: int, defer_after: float = 10.0) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        params={"rows": Param("", type="string"), "output": Param("", type="string")},
        tags=["bloom", "test"],
    ) as dag:
        BloomGenerateBatchOperator(
            task_id="generate",
            rows="{{ params.rows }}",
            output_path="{{ params.output }}",
            defaults={"aspect_ratio": "1:1"},
            bloom_conn_id=conn_id,
            deferrable=deferrable,
            defer_after=defer_after,
            retries=retries,
            retry_delay=timedelta(seconds=2),
            wait_timeout=1800,
        )
    return dag


# defer_after=0: straight to the triggerer once submitted (by default a wait that ends within 10 s stays
# in the worker, which at 3 s an image is most of this one).
large = batch_dag("bloom_batch_e2e_large", "bloom_batch_large", deferrable=True, retries=0, defer_after=0)
resume = batch_dag("bloom_batch_e2e_resume", "bloom_batch_resume", deferrable=False, retries=1)
bench = batch_dag("bloom_batch_bench", "bloom_batch_bench", deferrable=True, retries=0)


with DAG(
    dag_id="bloom_batch_bench_mapped",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={"rows": Param("", type="string")},
    tags=["bloom", "test"],
) as mapped:

    @task
    def prompts(params: dict | None = None) -> list[str]:
        import csv

        with open((params or {})["rows"], encoding="utf-8", newline="") as rows:
            return [row["prompt"] for row in csv.DictReader(rows)]

    fire = BloomGenerateImageOperator.partial(
        task_id="fire", aspect_ratio="1:1", bloom_conn_id="bloom_batch_bench"
    ).expand(prompt=prompts())
    BloomImageSensor(
        task_id="collect",
        image_ids=fire.output,
        bloom_conn_id="bloom_batch_bench",
        deferrable=True,
        on_failure="ignore",
        timeout=3600,
    )
