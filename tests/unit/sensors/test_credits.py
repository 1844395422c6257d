"""The credits check: BloomCreditsSensor under dag.test() against the emulator."""

from __future__ import annotations

import threading

from airflow_provider_bloom.operators.images import BloomGenerateImageOperator
from airflow_provider_bloom.sensors.credits import BloomCreditsSensor
from tests.helpers import bloom_dag, by_op


def test_a_credits_check_stops_a_batch_that_cannot_be_paid(bloom_conn, dag_run, request):
    bloom_conn.set_credits(5)
    prompts = ["a red kite", "a blue kite", "a green kite"]
    with bloom_dag(request.node.name, params={"n": 3}) as dag:
        BloomCreditsSensor(task_id="enough", prompts=prompts, variant_count=1, extra_credits=2)
        short = BloomCreditsSensor(task_id="short", prompts="{{ params.n }}", image_size="4K")
        BloomCreditsSensor(task_id="skipped", required_credits="{{ 9 }}", soft_fail=True)
        short >> BloomGenerateImageOperator(task_id="batch", prompt="a kite")
        BloomCreditsSensor(task_id="bad", required_credits="{{ 'lots' }}")
    out = dag_run(dag)

    assert out.states["enough"] == "success" and out.xcom("enough") == {
        "balance": 5,
        "unlimited": False,
        "required": 5.0,
    }
    assert out.states["short"] == "failed" and out.tries["short"] == 1
    message = out.error("short")
    assert "balance is 5 credits but the planned batch needs 6" in message
    assert "3 prompt(s) x 1 variant(s) x 2 credit(s) per 4K image = 6" in message
    assert "short by 1" in message
    assert out.states["batch"] == "upstream_failed"
    assert out.states["skipped"] == "skipped"
    assert out.states["bad"] == "failed" and "Invalid required_credits" in out.error("bad")
    assert by_op(bloom_conn, "images.generate") == 0


def test_prompts_rendered_from_a_template_are_counted(bloom_conn, dag_run, request):
    bloom_conn.set_credits(100)
    with bloom_dag(request.node.name, params={"prompts": ["x", "y", "z", "w"]}) as dag:
        BloomCreditsSensor(task_id="check", prompts="{{ params.prompts | length }}", variant_count=2)
    out = dag_run(dag)
    assert out.xcom("check")["required"] == 8.0


def test_unlimited_accounts_pass_and_a_top_up_ends_the_wait(bloom_conn, dag_run, request):
    bloom_conn.set_credits(0, unlimited=True)
    with bloom_dag(request.node.name + "_unlimited") as dag:
        BloomCreditsSensor(task_id="check", prompts=1000, image_size="4K", variant_count=5)
    out = dag_run(dag)
    assert out.states["check"] == "success" and out.xcom("check")["unlimited"] is True

    bloom_conn.set_credits(1)
    checks_before = by_op(bloom_conn, "credits.get")

    def top_up_after_a_short_poke() -> None:  # the test's "billing admin"
        while by_op(bloom_conn, "credits.get") == checks_before:
            if stop.wait(0.02):
                return
        bloom_conn.set_credits(50)

    stop = threading.Event()
    admin = threading.Thread(target=top_up_after_a_short_poke, daemon=True)
    with bloom_dag(request.node.name + "_top_up") as dag:
        BloomCreditsSensor(task_id="wait", prompts=10, wait_for_top_up=True, poke_interval=0.1, timeout=60)
    admin.start()
    try:
        out = dag_run(dag)
    finally:
        stop.set()
    assert out.states["wait"] == "success" and out.xcom("wait")["balance"] == 50
    assert by_op(bloom_conn, "credits.get") >= checks_before + 2  # a short poke, then one after the top-up


def test_waiting_for_a_top_up_times_out_with_the_numbers(bloom_conn, dag_run, request):
    bloom_conn.set_credits(2)
    with bloom_dag(request.node.name) as dag:
        BloomCreditsSensor(task_id="wait", prompts=4, wait_for_top_up=True, poke_interval=0.1, timeout=0.5)
    out = dag_run(dag)
    assert out.states["wait"] == "failed" and out.tries["wait"] == 1  # a sensor timeout is not retried
    assert "AirflowSensorTimeout" in out.error("wait")
    assert "balance is 2 credits but the planned batch needs 4" in out.error("wait")
