"""The review example (dags_examples/bloom_review_pipeline.py) through a real Airflow deployment,
answered through Airflow's REST API (``PATCH .../hitlDetails``) as a script or another service would.

The deployment of tests/e2e/stack.py (api-server, scheduler, dag-processor, triggerer, LocalExecutor,
SQLite), the emulator by its command line at its default image speed. Round 1: one image rejected with
a reason, one sent to edit with the reviewer's words; round 2: the edited image approved. Bad answers
(an unknown option; a second answer) are refused by Airflow and change nothing.

scripts/test_airflow_versions.sh runs the first test on Airflow 3.2 too, where the review is deferred
on the standard provider's ``HITLTrigger`` instead of parked as ``awaiting_input``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import airflow
import pytest
from packaging.version import Version

from tests.e2e.batch_stack import BatchStack, batch_stack, read_manifest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DAG_ID = "bloom_review_pipeline"
PROMPTS = ["a teal bicycle by the sea", "a lemon tart on slate", "a paper boat in a puddle"]
#: Airflow 3.3 refuses an option the review does not offer (400); 3.1 and 3.2 record it, and the task
#: then fails on resume naming it.
VALIDATES_OPTIONS = Version(Version(airflow.__version__).base_version) >= Version("3.3")
#: Where a review waits: parked on Airflow 3.3+, deferred on HITLTrigger before.
WAITING = {"awaiting_input", "deferred"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchStack]:
    home = tmp_path_factory.mktemp("airflow-review-e2e")
    with batch_stack(home, {"bloom_default": {}}, dags=(DAG_ID,)) as running:
        yield running


def hitl_path(stack: BatchStack, run_id: str, task_id: str) -> str:
    return f"{stack.run_path(DAG_ID, run_id)}/taskInstances/{task_id}/-1/hitlDetails"


def worker_exit_seen(stack: BatchStack, run_id: str, task_id: str) -> bool:
    """Whether the scheduler has handled the exit of the worker that parked (or deferred) the review.

    Answer before that and Airflow (3.3.2, seen here on SQLite) may fail the resumed task: the answer
    re-queues it at once, then the scheduler reads the parking worker's exit ("finished with state
    success, but the task instance's state attribute is queued"). See docs/howto/review.md. A person
    never answers that fast; a script must wait, and this test reads the scheduler's log to know when."""
    log = (stack.airflow.log_dir / "scheduler.log").read_text(errors="replace")
    key = f"task_id='{task_id}', run_id='{run_id}', try_number=1"
    return any(
        "Received executor event with state success" in line and key in line for line in log.splitlines()
    )


def wait_for_review(stack: BatchStack, run_id: str, task_id: str, timeout: float = 120) -> dict[str, Any]:
    """Until the review waits for input and the scheduler has seen its worker exit; its details."""
    deadline = time.monotonic() + timeout
    while True:
        stack.airflow.check_alive(["api-server", "scheduler", "dag-processor"])
        ti = stack.task_instance(DAG_ID, run_id, task_id)
        if ti["state"] in WAITING and worker_exit_seen(stack, run_id, task_id):
            # Parked on 3.3; deferred on the standard provider's HITLTrigger before.
            assert ti["state"] == ("awaiting_input" if VALIDATES_OPTIONS else "deferred")
            detail: dict[str, Any] = stack.airflow.api.get(hitl_path(stack, run_id, task_id))
            return detail
        if ti["state"] in ("failed", "upstream_failed", "skipped") or time.monotonic() > deadline:
            raise AssertionError(f"{task_id} is {ti['state']!r}, not waiting for input\n{stack.report()}")
        time.sleep(0.5)


def answer(stack: BatchStack, run_id: str, task_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = stack.airflow.api.client.patch(f"/api/v2{hitl_path(stack, run_id, task_id)}", json=body)
    return response.status_code, response.json()


def test_a_reviewer_rejects_one_edits_one_and_only_approved_images_are_published(
    stack: BatchStack, tmp_path: Path
) -> None:
    stack.emulator.reset()
    began = time.monotonic()
    run_id = stack.trigger(DAG_ID, prompts=PROMPTS, output=str(tmp_path))
    try:
        detail = wait_for_review(stack, run_id, "review_1")
        body = detail["body"]
        assert body.count("![image") == 3 and all(p in body for p in PROMPTS)
        assert stack.api_key not in body
        round_1 = {
            "chosen_options": ["Submit per-image decisions"],
            "params_input": {"reject": "1: off-brand colours", "edit": "2: warmer light, no text"},
        }
        if VALIDATES_OPTIONS:  # An option the review does not offer: 400, nothing recorded.
            status, _ = answer(stack, run_id, "review_1", {**round_1, "chosen_options": ["Publish"]})
            assert status == 400
            assert stack.airflow.api.get(hitl_path(stack, run_id, "review_1"))["response_received"] is False
        status, recorded = answer(stack, run_id, "review_1", round_1)
        assert status == 200, recorded
        # A second answer: 409, the first one stands.
        status, _ = answer(stack, run_id, "review_1", {"chosen_options": ["Approve all"], "params_input": {}})
        assert status == 409
        again = stack.airflow.api.get(hitl_path(stack, run_id, "review_1"))
        assert again["chosen_options"] == ["Submit per-image decisions"]
        assert again["params_input"]["reject"] == "1: off-brand colours"

        detail_2 = wait_for_review(stack, run_id, "review_2")
        assert detail_2["body"].count("![image") == 1  # only the edited image is asked again
        status, _ = answer(
            stack,
            run_id,
            "review_2",
            {"chosen_options": ["Approve all"], "params_input": {"reject": "", "edit": ""}},
        )
        assert status == 200
        state, _ = stack.wait_for_run(DAG_ID, run_id, timeout=120)
        assert state == "success", stack.report()
    except BaseException:
        print(stack.report())
        raise
    print(f"review e2e: run {time.monotonic() - began:.1f}s")

    review_1 = stack.xcom(DAG_ID, run_id, "review_1")
    review_2 = stack.xcom(DAG_ID, run_id, "review_2")
    assert review_1["responded_by"] == "admin" and review_1["timed_out"] is False
    rejected_id, edited_id = review_1["rejected"][0]["id"], review_1["edits"][0]["id"]
    assert review_1["rejected"] == [{"id": rejected_id, "reason": "off-brand colours"}]
    assert review_1["edits"] == [{"id": edited_id, "instruction": "warmer light, no text"}]
    (approved_id,) = review_1["approved"]

    # The edit went to Bloom with the reviewer's words: one edit, its image made from that prompt.
    assert stack.counters()["by_operation"].get("images.edit") == 1
    (new_id,) = review_2["approved"]
    (edited,) = stack.emulator.image_records([new_id])
    assert edited["prompt"] == "warmer light, no text"

    # The reviewed manifest records every decision and who made it.
    records = read_manifest(Path(review_2["manifest_path"].removeprefix("file://")))
    decisions = {r["image_ids"][0]: r["review"] for r in records}
    assert decisions[rejected_id]["decision"] == "rejected"
    assert decisions[rejected_id]["reason"] == "off-brand colours" and decisions[rejected_id]["by"] == "admin"
    assert decisions[approved_id]["decision"] == "approved" and decisions[approved_id]["round"] == 1
    assert decisions[new_id]["decision"] == "approved" and decisions[new_id]["round"] == 2
    (edited_record,) = [r for r in records if r["image_ids"][0] == new_id]
    assert edited_record["source_image_id"] == edited_id
    assert edited_record["review_history"][0]["instruction"] == "warmer light, no text"

    # Only the approved images were downloaded; the rejected one is not.
    files = sorted(p.name for p in tmp_path.rglob("files/*"))
    assert files == sorted([f"{approved_id}.png", f"{new_id}.png"])
