"""Lost answers to paid POSTs: the operators find what Bloom created, or fail listing candidates.

Every test talks HTTP to the emulator; its faults lose the answer after Bloom did the work
(``cut_after``, ``truncate``, ``corrupt``, ``status_after``) or before (``cut_before``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from airflow.sdk import DAG
from test_generate_operator import dag_run_fixture  # noqa: F401  (the dag_run fixture)

from airflow_provider_bloom.operators.images import GenerateImageOperator

START = datetime(2024, 1, 1)
RETRIES = {"retries": 2, "retry_delay": timedelta(0)}
#: Every way of losing the answer after Bloom acted, as emulator faults.
LOST_AFTER_EFFECT = [
    pytest.param({"kind": "cut_after"}, id="cut_after"),
    pytest.param({"kind": "truncate"}, id="truncate"),
    pytest.param({"kind": "corrupt"}, id="corrupt"),
    pytest.param({"kind": "status_after", "status": 502}, id="status_after_502"),
]


def _generated(emulator, action: str = "generation") -> list[dict]:
    return [r for r in emulator.image_records() if r["action_type"] == action]


def _expect_corruption_only(emulator, fault: dict, operation: str) -> None:
    """A ``corrupt`` fault breaks the spec on purpose: accept exactly that violation, nothing else."""
    if fault["kind"] != "corrupt":
        return
    assert {v["operation"] for v in emulator.violations()} == {operation}
    emulator.clear_violations()


def _orphans(emulator, adopted: list[str], action: str = "generation") -> list[str]:
    return [r["id"] for r in _generated(emulator, action) if r["id"] not in adopted]


# --------------------------------------------------------------------------- generate


@pytest.mark.parametrize("fault", LOST_AFTER_EFFECT)
@pytest.mark.parametrize("variants", [1, 3])
def test_generate_recovers_the_images_of_a_lost_answer(bloom_conn, dag_run, fault, variants):
    bloom_conn.add_fault("images.generate", **fault)
    with DAG(f"rec_gen_{fault['kind']}_{variants}", schedule=None, start_date=START) as dag:
        GenerateImageOperator(
            task_id="gen", prompt="a lighthouse", aspect_ratio="4:5", variant_count=variants, **RETRIES
        )
    run = dag_run(dag)
    assert run.state_of("gen") == "success" and run.tries_of("gen") == 1
    ids = run.xcom("gen")
    made = _generated(bloom_conn)
    assert sorted(ids) == sorted(r["id"] for r in made) and len(ids) == variants
    assert run.xcom("gen", "variant_group_id") == made[0]["variant_group_id"]
    counters = bloom_conn.requests()
    assert (counters["paid_posts"], counters["paid_posts_effective"]) == (1, 1)
    assert f"Recovered the {variants} image(s)" in run.log
    _expect_corruption_only(bloom_conn, fault, "images.generate")
