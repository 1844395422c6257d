"""Lost answers to paid POSTs, through the ledger and reconciliation the operators share
(``tasks/ledger.py``, ``tasks/reconciler.py``): the operators find what Bloom created, or fail listing
candidates.

Every test talks HTTP to the emulator; its faults lose the answer after Bloom did the work
(``cut_after``, ``truncate``, ``corrupt``, ``status_after``) or before (``cut_before``).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.emulator.png import make_png
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.logic.reconcile import ReconcileError
from airflow_provider_bloom.operators.brands import BloomCreateBrandOperator
from airflow_provider_bloom.operators.images import (
    BloomEditImageOperator,
    BloomGenerateImageOperator,
    BloomRemoveBackgroundOperator,
    BloomResizeImageOperator,
    BloomVectorizeImageOperator,
)
from airflow_provider_bloom.operators.library import BloomUploadImageOperator
from airflow_provider_bloom.tasks.ledger import PaidRequestLedger
from tests.helpers import START, bloom_dag, by_op, completed_images, conn_json

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
        BloomGenerateImageOperator(
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


def test_generate_skips_an_identical_generation_made_before_the_request(bloom_conn, dag_run):
    """An earlier run's images with the same prompt are outside the window: only this task's are adopted."""
    decoy = BloomHook().generate_images(prompt="a lighthouse", aspect_ratio="4:5")["ids"]
    bloom_conn.configure(clock_offset_seconds=30)  # Bloom's clock moves on: the decoy is 30 s old
    bloom_conn.add_fault("images.generate", "cut_after")
    with DAG("rec_gen_decoy", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(task_id="gen", prompt="a lighthouse", aspect_ratio="4:5", **RETRIES)
    run = dag_run(dag)
    assert run.state_of("gen") == "success"
    (adopted,) = run.xcom("gen")
    assert adopted not in decoy and sorted(_orphans(bloom_conn, [adopted])) == sorted(decoy)


@pytest.mark.parametrize("offset", [-7200, 7200])
def test_generate_uses_blooms_clock_not_this_machines(bloom_conn, dag_run, offset):
    """Bloom's clock two hours off this machine's: the window comes from Bloom's Date header."""
    bloom_conn.configure(clock_offset_seconds=offset)
    bloom_conn.reset()  # seed the brand in Bloom's (shifted) time
    bloom_conn.add_fault("images.generate", "cut_after")
    with DAG(f"rec_gen_skew_{offset}".replace("-", "m"), schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(task_id="gen", prompt="a windmill", variant_count=2, **RETRIES)
    run = dag_run(dag)
    assert run.state_of("gen") == "success"
    assert sorted(run.xcom("gen")) == sorted(r["id"] for r in _generated(bloom_conn))


def test_generate_looks_again_while_blooms_list_lags(bloom_conn, dag_run):
    bloom_conn.configure(list_delay_seconds=2.5)
    bloom_conn.add_fault("images.generate", "truncate")
    with DAG("rec_gen_lag", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(task_id="gen", prompt="a tram", variant_count=2, **RETRIES)
    run = dag_run(dag)
    assert run.state_of("gen") == "success"
    assert sorted(run.xcom("gen")) == sorted(r["id"] for r in _generated(bloom_conn))
    assert "Looking again for what the lost images.generate created" in run.log
    assert bloom_conn.requests()["paid_posts"] == 1


def test_generate_fails_listing_nothing_when_bloom_did_nothing(bloom_conn, dag_run):
    """``cut_before``: the request may or may not have reached Bloom; nothing is listed, so the task
    fails without retries (it does not post again on a guess) once the bounded window has passed."""
    bloom_conn.add_fault("images.generate", "cut_before")
    with DAG("rec_gen_nothing", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(task_id="gen", prompt="a bridge", reconcile_timeout=2, **RETRIES)
    run = dag_run(dag)
    assert run.state_of("gen") == "failed" and run.tries_of("gen") == 1
    assert "Nothing matching was found" in run.log and "Not sent again" in run.log
    counters = bloom_conn.requests()
    assert (counters["paid_posts"], counters["paid_posts_effective"]) == (1, 0)


def test_two_tasks_losing_identical_requests_at_once_adopt_nothing(bloom_conn):
    """Two mapped tasks with the same prompt, both answers lost at the same moment: two groups match,
    neither task can tell which is its own, both fail listing both groups; no image is adopted."""
    bloom_conn.add_fault("images.generate", "cut_after", count=2)
    barrier = threading.Barrier(2)
    outcomes: dict[int, BaseException | dict] = {}

    def task(index: int) -> None:
        op = BloomGenerateImageOperator(
            task_id="gen", prompt="a red kite", variant_count=2, reconcile_timeout=3
        )
        call = op.hook.prepare("images.generate", body=op.build_request())
        body = dict(call.json or {})

        def post() -> dict:
            barrier.wait(timeout=10)
            return op.hook.send(call)

        ledger = PaidRequestLedger({}, op.log)
        try:
            outcomes[index] = ledger.run(
                "images.generate",
                call.json,
                post,
                recover=lambda lost, attempt: op._recover(body, lost, attempt),
            )
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcomes[index] = exc

    threads = [threading.Thread(target=task, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    made = {r["id"] for r in _generated(bloom_conn)}
    assert len(made) == 4
    for index in range(2):
        error = outcomes[index]
        assert isinstance(error, ReconcileError), error
        assert "2 groups of images match the request" in str(error)
        assert {c["id"] for c in error.candidates} == made  # every candidate listed for a person
    assert bloom_conn.requests()["paid_posts"] == 2


# --------------------------------------------------------------------------- edit and post-processing


@pytest.mark.parametrize("fault", LOST_AFTER_EFFECT)
def test_edit_recovers_the_image_of_a_lost_answer(bloom_conn, dag_run, request, fault):
    sources = [r["id"] for r in completed_images(2, aspect_ratio="3:2")]
    bloom_conn.add_fault("images.edit", "delay", delay_seconds=0)  # the first edit is answered
    bloom_conn.add_fault("images.edit", **fault)  # the second one's answer is lost
    with bloom_dag(request.node.name) as dag:
        BloomEditImageOperator(task_id="edit", image_ids=sources, prompt="make it night")
    out = dag_run(dag)
    assert out.states["edit"] == "success" and out.tries["edit"] == 1, out.errors
    edits = _generated(bloom_conn, "edit")
    by_parent = {r["parent_id"]: r["id"] for r in edits}
    assert out.xcom("edit") == [by_parent[sources[0]], by_parent[sources[1]]]
    assert by_op(bloom_conn, "images.edit") == 2 and bloom_conn.requests()["paid_posts_effective"] == 3
    _expect_corruption_only(bloom_conn, fault, "images.edit")


@pytest.mark.parametrize(
    ("operator", "action", "kwargs"),
    [
        (BloomResizeImageOperator, "resize", {"target_aspect_ratio": "9:16"}),
        (BloomRemoveBackgroundOperator, "remove-background", {}),
        (BloomVectorizeImageOperator, "vectorize", {}),
    ],
)
def test_post_processing_fails_listing_what_it_found(bloom_conn, dag_run, request, operator, action, kwargs):
    """A resize/remove-background/vectorize result has no prompt and no source id in Bloom's list:
    it cannot be tied to its request, so the task fails without retries and lists it."""
    (source,) = [r["id"] for r in completed_images(1)]
    bloom_conn.add_fault(f"images.{_OPERATIONS[action]}", "cut_after")
    with bloom_dag(request.node.name) as dag:
        operator(task_id="post", image_ids=[source], **kwargs)
    out = dag_run(dag)
    assert out.states["post"] == "failed" and out.tries["post"] == 1
    (made,) = [r["id"] for r in _generated(bloom_conn, action)]
    assert made in out.error("post") and "cannot be told apart" in out.error("post")
    assert bloom_conn.requests()["paid_posts"] == 2  # the setup's generation and this one


_OPERATIONS = {"resize": "resize", "remove-background": "removeBackground", "vectorize": "vectorize"}


# --------------------------------------------------------------------------- uploads


@pytest.mark.parametrize("fault", LOST_AFTER_EFFECT)
@pytest.mark.parametrize("by", ["file", "url"])
def test_a_lost_upload_is_sent_once_more_and_bloom_answers_existing(
    bloom_conn, dag_run, tmp_path, request, fault, by
):
    path = tmp_path / "hero.png"
    path.write_bytes(make_png(640, 480, tint=3))
    source = str(path) if by == "file" else "https://cdn.example.com/hero.png"
    operation = "images.uploadFile" if by == "file" else "images.upload"
    bloom_conn.add_fault(operation, **fault)
    with bloom_dag(request.node.name) as dag:
        BloomUploadImageOperator(task_id="upload", images=[source])
    out = dag_run(dag)
    assert out.states["upload"] == "success" and out.tries["upload"] == 1, out.errors
    uploaded = [r["id"] for r in bloom_conn.image_records() if r["source"] == "uploaded"]
    assert out.xcom("upload")["image_ids"] == uploaded and len(uploaded) == 1
    assert by_op(bloom_conn, operation) == 2  # sent once more, Bloom reused the identical image
    _expect_corruption_only(bloom_conn, fault, operation)


def test_a_lost_signed_upload_is_not_sent_again(bloom_conn, dag_run, tmp_path, request):
    """The signed-upload token is single-use and the lost request may have spent it."""
    path = tmp_path / "signed.png"
    path.write_bytes(make_png(320, 200, tint=9))
    token = bloom_conn.mint_upload_token("image", brand_id=DEFAULT_BRAND_ID)
    bloom_conn.add_fault("images.uploadFileSigned", "cut_after")
    with bloom_dag(request.node.name) as dag:
        BloomUploadImageOperator(task_id="upload", images=[path], upload_tokens=[token])
    out = dag_run(dag)
    assert out.states["upload"] == "failed" and out.tries["upload"] == 1
    assert by_op(bloom_conn, "images.uploadFileSigned") == 1


# --------------------------------------------------------------------------- brands


@pytest.mark.parametrize("fault", LOST_AFTER_EFFECT)
def test_brand_creation_recovers_the_brand_of_a_lost_answer(bloom_conn, dag_run, request, fault):
    url = "https://lost-answer.example.com"
    BloomHook().create_brand(url="https://other.example.com")  # another brand created meanwhile
    bloom_conn.add_fault("brands.create", **fault)
    with bloom_dag(request.node.name) as dag:
        BloomCreateBrandOperator(task_id="create", url=url)
    out = dag_run(dag)
    assert out.states["create"] == "success" and out.tries["create"] == 1, out.errors
    (brand,) = [b for b in BloomHook().iter_brands() if b["url"] == url]
    assert out.xcom("create") == brand["id"]
    assert by_op(bloom_conn, "brands.create") == 2  # the other brand's and this one: never re-sent
    _expect_corruption_only(bloom_conn, fault, "brands.create")


# --------------------------------------------------------------------------- clearing


class _Store(dict):
    def set(self, key, value):
        self[key] = value


def test_a_cleared_task_makes_new_images_unless_reuse_on_clear(bloom_conn):
    """Retries of one run of the task reuse the stored answer; a clear (Airflow raises ``max_tries``
    to ``try_number + retries``) starts a new round that posts again, unless ``reuse_on_clear``."""
    hook, store, log = BloomHook(), _Store(), logging.getLogger("test")
    task = SimpleNamespace(retries=2)

    def run(max_tries: int, reuse_on_clear: bool = False) -> list[str]:
        context = {"task_state_store": store, "ti": SimpleNamespace(max_tries=max_tries), "task": task}
        ledger = PaidRequestLedger(context, log, reuse_on_clear=reuse_on_clear)
        return ledger.run("images.generate", {"prompt": "a yak"}, lambda: hook.generate_images("a yak"))[
            "ids"
        ]

    first = run(max_tries=2)  # the first run: max_tries == retries
    assert run(max_tries=2) == first  # its retry reuses
    cleared = run(max_tries=3 + 2)  # cleared after 3 tries: a new round posts again
    assert cleared != first
    assert run(max_tries=5) == cleared  # ... and that round's retries reuse its own answer
    assert run(max_tries=7 + 2, reuse_on_clear=True) == first  # opt-in: keep the images across clears
    assert bloom_conn.requests()["paid_posts"] == 2


def test_airflows_clear_starts_a_new_round_and_a_retry_does_not(bloom_conn, dag_run, monkeypatch):
    """The clear round read from a real task instance: 0 after a run with a retry, and the try number
    at the clear after Airflow's own ``clear_task_instances`` (which sets ``max_tries``)."""
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.utils.session import create_session

    from airflow_provider_bloom.tasks.ledger import clear_round

    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, max_retries=0))
    bloom_conn.add_fault("images.list", "status", count=3, status=503)  # the first try's wait times out
    with DAG("rec_clear_round", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(
            task_id="gen",
            prompt="a heron",
            wait_for_completion=True,
            deferrable=False,
            wait_timeout=2,
            retries=3,
            retry_delay=timedelta(0),
        )
    run = dag_run(dag)
    assert run.state_of("gen") == "success" and run.tries_of("gen") >= 2  # retried
    assert bloom_conn.requests()["paid_posts"] == 1
    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).one()
        task = SimpleNamespace(retries=3)
        assert clear_round({"ti": ti, "task": task}) == 0  # the retries stayed in the first round
        tries = ti.try_number
        clear_task_instances([ti], session)
        session.flush()
        assert (ti.max_tries, clear_round({"ti": ti, "task": task})) == (tries + 3, tries)


def test_mapped_tasks_with_the_same_prompt_never_share_images(bloom_conn, dag_run):
    """Two mapped tasks, same prompt, both answers lost (dag.test runs them one after the other):
    each either recovers its own images or fails listing candidates; none takes the other's."""
    bloom_conn.add_fault("images.generate", "cut_after", count=2)
    with DAG("rec_gen_mapped_same_prompt", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator.partial(
            task_id="gen", prompt="a swan", reconcile_timeout=3, **RETRIES
        ).expand(variant_count=[2, 2])
    run = dag_run(dag)
    adopted = [run.xcom("gen", map_index=i) for i in range(2)]
    for index, ids in enumerate(adopted):
        assert run.tries_of("gen", index) == 1
        if ids is None:
            assert run.state_of("gen", index) == "failed" and "groups of images match" in run.log
        else:
            assert run.state_of("gen", index) == "success" and len(ids) == 2
    if all(adopted):
        assert not set(adopted[0]) & set(adopted[1])
    assert bloom_conn.requests()["paid_posts"] == 2


def test_a_read_timeout_keeps_the_window_open_while_bloom_is_still_working(bloom_conn, dag_run, monkeypatch):
    """The client gives up after 1 s; Bloom makes the images 2 s after the request arrived. The window
    has no end after a timeout, so the later looks find and adopt them."""
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, timeout=1))
    bloom_conn.add_fault("images.generate", "delay", delay_seconds=2)
    with DAG("rec_gen_read_timeout", schedule=None, start_date=START) as dag:
        BloomGenerateImageOperator(task_id="gen", prompt="a glacier", variant_count=2, **RETRIES)
    run = dag_run(dag)
    assert run.state_of("gen") == "success" and run.tries_of("gen") == 1
    made = _generated(bloom_conn)
    assert len(made) == 2 and sorted(run.xcom("gen")) == sorted(r["id"] for r in made)
    assert "ReadTimeout" in run.log
    assert bloom_conn.requests()["paid_posts"] == 1
