"""BloomImageReviewOperator: its body, its answers, its time limits, its paging.

The body and answer parsing are plain functions (``tests/unit/test_review.py``); here the operator runs
under ``dag.test()`` against the emulator (HTTP on loopback). On Airflow 3.3 a review parks as
``awaiting_input`` and dag.test() waits for a response recorded from outside: a thread answers through
Airflow's own REST handler (``update_hitl_detail``, what ``PATCH .../hitlDetails`` runs) or lets the
scheduler's timeout sweep (``check_awaiting_input_timeouts``) apply ``on_timeout``.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import airflow
import pytest
from airflow.sdk import DAG
from airflow.sdk.bases.notifier import BaseNotifier
from packaging.version import Version

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.logic.batch.manifest import from_jsonl, to_jsonl
from airflow_provider_bloom.logic.review.answers import APPROVE_ALL, REJECT_ALL, SUBMIT
from airflow_provider_bloom.operators.review import BloomImageReviewOperator, merge_reviews, review_pages
from tests.helpers import API_KEY, START, completed_images

AIRFLOW_33 = Version(Version(airflow.__version__).base_version) >= Version("3.3")
IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(1, 6)]


# ------------------------------------------------------------------------------- paging
def test_pages_of_a_500_image_manifest(tmp_path):
    records = [{"row": i, "image_ids": [f"00000000-0000-4000-8000-{i:012d}"]} for i in range(1, 501)]
    manifest = tmp_path / "gen.jsonl"
    manifest.write_text(to_jsonl(records))
    assert review_pages(str(manifest), page_size=25) == list(range(1, 21))
    assert review_pages(str(manifest), page_size=100) == [1, 2, 3, 4, 5]
    with pytest.raises(BloomInputError, match="page_size"):
        review_pages(str(manifest), page_size=500)
    # Page reviews merged: every record has its decision.
    pages = [
        {
            "approved": [r["image_ids"][0] for r in records[(p - 1) * 25 : p * 25]],
            "rejected": [],
            "edits": [],
            "responded_by": "ana",
            "responded_at": "t",
            "timed_out": False,
            "round": 1,
        }
        for p in range(1, 21)
    ]
    merged = merge_reviews({"manifest": str(manifest), "counts": {}}, pages)
    written = from_jsonl(Path(merged["manifest_path"].removeprefix("file://")).read_text())
    assert merged["decisions"]["approved"] == 500 and all(
        r["review"]["decision"] == "approved" for r in written
    )


def test_bad_arguments_fail_when_the_dag_is_parsed():
    with pytest.raises(BloomInputError, match="on_timeout"):
        BloomImageReviewOperator(task_id="r", images=IDS, on_timeout="maybe")
    with pytest.raises(BloomInputError, match="needs a response_timeout"):
        BloomImageReviewOperator(task_id="r", images=IDS, on_timeout="approve_all")
    with pytest.raises(BloomInputError, match="page_size"):
        BloomImageReviewOperator(task_id="r", images=IDS, page_size=0)
    with pytest.raises(BloomInputError, match="options"):
        BloomImageReviewOperator(task_id="r", images=IDS, options=["A"])


# ------------------------------------------------------------------------------- under dag.test()
class _User:
    def get_id(self) -> str:
        return "ana"

    def get_name(self) -> str:
        return "Ana Reviewer"


def _parked(dag_id: str, task_id: str, map_index: int | None = None) -> Any:
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        ti = (
            session.query(TI)
            .filter(TI.dag_id == dag_id, TI.task_id == task_id, TI.state == TaskInstanceState.AWAITING_INPUT)
            .filter(TI.map_index == map_index if map_index is not None else True)
            .one_or_none()
        )
        return (ti.run_id, ti.map_index) if ti is not None else None


def _answer_when_parked(
    dag_id: str, task_id: str, answer: dict | None, seen: dict, map_index: int | None = None
) -> threading.Thread:
    """A thread: once the review is parked, record ``answer`` through Airflow's REST handler (None: let
    the scheduler's timeout sweep run once the deadline passed)."""

    # Imported here, not in the thread (a thread importing while dag.test() imports can deadlock).
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import get_hitl_detail, update_hitl_detail
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.taskinstance import TaskInstance  # noqa: F401 (for _parked)
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState  # noqa: F401 (for _parked)

    def run() -> None:
        end = time.monotonic() + 60
        while (where := _parked(dag_id, task_id, map_index)) is None:
            if time.monotonic() > end:
                return
            time.sleep(0.2)
        run_id, parked_index = where
        with create_session() as session:
            detail = get_hitl_detail(dag_id, run_id, task_id, session=session, map_index=parked_index)
            seen["body"], seen["subject"] = detail.body, detail.subject
            seen["options"], seen["params"] = detail.options, detail.params
        if answer is not None:
            with create_session() as session:
                update_hitl_detail(
                    dag_id,
                    run_id,
                    task_id,
                    UpdateHITLDetailPayload(**answer),
                    user=_User(),
                    session=session,
                    map_index=parked_index,
                )
            return
        while time.monotonic() < end:
            class_ = SchedulerJobRunner
            stub = type("Stub", (), {"log": __import__("logging").getLogger("sweep")})()
            with create_session() as session:
                class_.check_awaiting_input_timeouts(stub, session=session)  # type: ignore[arg-type]
            if _parked(dag_id, task_id, map_index) is None:
                return
            time.sleep(0.3)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


needs_33 = pytest.mark.skipif(not AIRFLOW_33, reason="dag.test() parks HITL as awaiting_input on 3.3+")


def _manifest(tmp_path: Path, images: list[dict]) -> Path:
    records = [
        {
            "prompt": image["prompt"],
            "channel": "story" if n % 2 else "feed",
            "sku": f"SKU-{n}",
            "row": n,
            "operation": "images.generate",
            "image_ids": [image["id"]],
            "images": [{"id": image["id"], "status": "completed", "failure_reason": None}],
            "status": "completed",
        }
        for n, image in enumerate(images, start=1)
    ]
    path = tmp_path / "gen.jsonl"
    path.write_text(to_jsonl(records))
    return path


NOTIFIED: list[str] = []


class _Notifier(BaseNotifier):
    """Records the review's subject when called (as a Slack notifier would post it)."""

    template_fields = ("message",)

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def notify(self, context: Any) -> None:
        NOTIFIED.append(f"{self.message} {context['task'].subject}")


@needs_33
def test_review_of_a_manifest_shows_thumbnails_and_writes_decisions(bloom_conn, dag_run, tmp_path):
    images = completed_images(3, prompt="a red | bicycle <on> a beach")
    manifest = _manifest(tmp_path, images)
    NOTIFIED.clear()
    with DAG("review_manifest", schedule=None, start_date=START) as dag:
        BloomImageReviewOperator(
            task_id="review",
            images=str(manifest),
            subject="Spring campaign",
            notifiers=[_Notifier("review open for {{ task.task_id }}:")],
        )
    seen: dict = {}
    thread = _answer_when_parked(
        "review_manifest",
        "review",
        {"chosen_options": [SUBMIT], "params_input": {"reject": "1: off-brand", "edit": "3: warmer light"}},
        seen,
    )
    run = dag_run(dag)
    thread.join(5)
    assert run.state == "success", run.log[-3000:]
    body = seen["body"]
    origin = bloom_conn.base_url.removesuffix("/api/v1")
    for image in images:
        assert f"({origin}/img/{image['id']})" in body  # the short link, loadable, no key
    assert "a red \\| bicycle &lt;on&gt; a beach" in body and "channel: story" in body and "SKU-1" in body
    assert API_KEY not in body and "data:" not in body
    assert seen["options"] == [APPROVE_ALL, REJECT_ALL, SUBMIT] and set(seen["params"]) == {"reject", "edit"}
    result = run.xcom("review")
    assert result["approved"] == [images[1]["id"]]
    assert result["rejected"] == [{"id": images[0]["id"], "reason": "off-brand"}]
    assert result["edits"] == [{"id": images[2]["id"], "instruction": "warmer light"}]
    assert result["responded_by"] == "Ana Reviewer" and result["timed_out"] is False and result["round"] == 1
    written = from_jsonl(Path(result["manifest_path"].removeprefix("file://")).read_text())
    assert [r["review"]["decision"] for r in written] == ["rejected", "approved", "edit_requested"]
    assert written[0]["review"]["by"] == "Ana Reviewer" and written[0]["review"]["reason"] == "off-brand"
    assert "required_actions?map_index=-1" in run.log  # the link to the Required Action page
    assert NOTIFIED == ["review open for review: Spring campaign"]  # notifiers passed through, called once


@needs_33
def test_an_answer_naming_an_unknown_image_fails_the_task_naming_it(bloom_conn, dag_run):
    images = completed_images(2)
    with DAG("review_unknown", schedule=None, start_date=START) as dag:
        BloomImageReviewOperator(task_id="review", images=[i["id"] for i in images])
    answer = {"chosen_options": [SUBMIT], "params_input": {"reject": "9: gone", "edit": ""}}
    thread = _answer_when_parked("review_unknown", "review", answer, {})
    run = dag_run(dag)
    thread.join(5)
    assert run.state == "failed"
    assert "not in it: ['9']" in run.log


@needs_33
@pytest.mark.parametrize(
    ("on_timeout", "state", "approved", "rejected"),
    [("fail", "failed", 0, 0), ("approve_all", "success", 2, 0), ("reject_all", "success", 0, 2)],
)
def test_an_unanswered_review_ends_as_configured(bloom_conn, dag_run, on_timeout, state, approved, rejected):
    images = completed_images(2)
    dag_id = f"review_timeout_{on_timeout}"
    with DAG(dag_id, schedule=None, start_date=START) as dag:
        BloomImageReviewOperator(
            task_id="review",
            images=images,
            response_timeout=timedelta(seconds=1),
            on_timeout=on_timeout,
        )
    thread = _answer_when_parked(dag_id, "review", None, {})
    run = dag_run(dag)
    thread.join(5)
    assert run.state == state, run.log[-2000:]
    if state == "success":
        result = run.xcom("review")
        assert result["timed_out"] is True and result["responded_by"] is None
        assert (len(result["approved"]), len(result["rejected"])) == (approved, rejected)
        if rejected:
            assert result["rejected"][0]["reason"] == "no answer within the review's response_timeout"
    else:
        assert "HITLTimeoutError" in run.log and "not answered within 0:00:01" in run.log


@needs_33
def test_more_images_than_a_page_need_a_page_and_a_page_shows_its_share(bloom_conn, dag_run):
    images = completed_images(3)
    with DAG("review_paged", schedule=None, start_date=START) as dag:
        BloomImageReviewOperator(task_id="unpaged", images=images, page_size=2)
        BloomImageReviewOperator(task_id="page2", images=images, page_size=2, page=2)
    seen: dict = {}
    answer = {"chosen_options": [APPROVE_ALL], "params_input": {"reject": "", "edit": ""}}
    thread = _answer_when_parked("review_paged", "page2", answer, seen)
    run = dag_run(dag)
    thread.join(5)
    assert run.state_of("unpaged") == "failed" and "more than page_size=2" in run.log
    assert run.state_of("page2") == "success"
    assert seen["body"].count("![image") == 1 and images[2]["id"] in seen["body"]
    assert "(page 2 of 2)" in seen["subject"]
    assert run.xcom("page2")["approved"] == [images[2]["id"]]


# ------------------------------------------------------------------------------- the example DAG
def _example_dag() -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    from tests.e2e.stack import DAGS_FOLDER

    return DagBag(str(DAGS_FOLDER)).get_dag("bloom_review_pipeline")


PROMPTS = ["a teal bicycle", "a lemon tart", "a paper boat"]


@needs_33
def test_review_example_edits_with_the_reviewers_words_and_publishes_only_approved(
    bloom_conn, dag_run, tmp_path
):
    from airflow_provider_bloom.hooks.bloom import BloomHook

    dag = _example_dag()
    form = {"reject": "1: off-brand", "edit": "2: warmer light"}
    first = {"chosen_options": [SUBMIT], "params_input": form}
    second = {"chosen_options": [APPROVE_ALL], "params_input": {"reject": "", "edit": ""}}
    seen_1: dict = {}
    seen_2: dict = {}
    threads = [
        _answer_when_parked(dag.dag_id, "review_1", first, seen_1),
        _answer_when_parked(dag.dag_id, "review_2", second, seen_2),
    ]
    run = dag_run(dag, run_conf={"prompts": PROMPTS, "output": str(tmp_path)})
    for thread in threads:
        thread.join(5)
    assert run.state == "success", run.errors
    assert seen_1["body"].count("![image") == 3 and seen_2["body"].count("![image") == 1
    reviewed = run.xcom("review_2")
    records = from_jsonl(Path(reviewed["manifest_path"].removeprefix("file://")).read_text())
    by_prompt = {r["prompt"]: r for r in records}
    rejected, edited, approved = (by_prompt[p] for p in PROMPTS)
    assert rejected["review"]["decision"] == "rejected" and rejected["review"]["reason"] == "off-brand"
    assert rejected["review"]["by"] == "Ana Reviewer" and rejected["review"]["round"] == 1
    assert approved["review"]["decision"] == "approved" and approved["review"]["round"] == 1
    # The edit: made with the reviewer's words, reviewed again in round 2, its round-1 review kept.
    assert edited["operation"] == "images.edit" and edited["review"]["round"] == 2
    assert edited["review"]["decision"] == "approved"
    assert edited["review_history"][0]["instruction"] == "warmer light"
    bloom_record = BloomHook().get_image(edited["image_ids"][0])
    assert bloom_record["prompt"] == "warmer light" and bloom_record["actionType"] == "edit"
    # Only the approved images were downloaded.
    files = sorted(p.name for p in tmp_path.rglob("files/*"))
    assert files == sorted(f"{r['image_ids'][0]}.png" for r in (approved, edited))
    assert run.xcom("report")["decisions"] == {"approved": 2, "rejected": 1, "edit_requested": 0}


def test_review_example_runs_with_nobody_present_when_review_is_off(bloom_conn, dag_run, tmp_path):
    run = dag_run(_example_dag(), run_conf={"prompts": PROMPTS[:2], "output": str(tmp_path), "review": False})
    assert run.state == "success", run.errors
    result = run.xcom("review_1")
    assert result["auto_approved"] is True and len(result["approved"]) == 2
    assert len(list(tmp_path.rglob("files/*.png"))) == 2


@needs_33
def test_a_batch_larger_than_a_page_is_reviewed_by_mapped_pages_and_merged(bloom_conn, dag_run, tmp_path):
    from airflow.sdk import task

    images = completed_images(3)
    manifest = _manifest(tmp_path, images)
    with DAG("review_mapped_pages", schedule=None, start_date=START) as dag:
        pages = task(review_pages)(str(manifest), page_size=2)
        review = BloomImageReviewOperator.partial(task_id="review", images=str(manifest), page_size=2).expand(
            page=pages
        )
        task(merge_reviews, task_id="merge")(str(manifest), review.output)
    answers = {
        0: {"chosen_options": [SUBMIT], "params_input": {"reject": "2: blurry", "edit": ""}},
        1: {"chosen_options": [APPROVE_ALL], "params_input": {"reject": "", "edit": ""}},
    }
    seen: dict[int, dict] = {0: {}, 1: {}}
    threads = [
        _answer_when_parked("review_mapped_pages", "review", answers[i], seen[i], map_index=i) for i in (0, 1)
    ]
    run = dag_run(dag)
    for thread in threads:
        thread.join(5)
    assert run.state == "success", run.log[-3000:]
    assert seen[0]["body"].count("![image") == 2 and seen[1]["body"].count("![image") == 1
    assert "(page 2 of 2)" in seen[1]["subject"]
    merged = run.xcom("merge")
    records = from_jsonl(Path(merged["manifest_path"].removeprefix("file://")).read_text())
    assert [r["review"]["decision"] for r in records] == ["approved", "rejected", "approved"]
    assert records[1]["review"]["reason"] == "blurry"
    assert merged["decisions"] == {"approved": 2, "rejected": 1, "edit_requested": 0}
