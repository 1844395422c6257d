"""Brand onboarding: BloomCreateBrandOperator -> BloomBrandSensor (poke and deferrable) -> ready / failed /
logo_required, logo updates, listing and deletion. All over HTTP against the emulator.
(BloomBrandTrigger driven directly: tests/unit/triggers/test_brands.py.)
"""

from __future__ import annotations

import uuid

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.emulator.png import make_png, make_svg
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.operators.brands import (
    BloomCreateBrandOperator,
    BloomDeleteBrandOperator,
    BloomListBrandsOperator,
    BloomUpdateBrandLogoOperator,
)
from airflow_provider_bloom.sensors.brands import BloomBrandSensor
from tests.helpers import bloom_dag, by_op

UUID_LEN = 36


def test_onboarding_to_ready_then_list_and_delete(bloom_conn, dag_run, request):
    bloom_conn.configure(brand_ready_seconds=2.0)  # long enough for the sensors to really wait
    with bloom_dag(request.node.name) as dag:
        create = BloomCreateBrandOperator(task_id="create", url="https://acme-{{ ds_nodash }}.example.com")
        poked = BloomBrandSensor(
            task_id="wait_poke", brand_id=create.output, deferrable=False, poke_interval=0.1
        )
        deferred = BloomBrandSensor(
            task_id="wait_deferred",
            brand_id=create.output,
            deferrable=True,
            defer_after=0,
            min_defer_seconds=0,
        )
        listed = BloomListBrandsOperator(task_id="list", status="ready")
        delete = BloomDeleteBrandOperator(task_id="delete", brand_id=create.output)
        delete_again = BloomDeleteBrandOperator(
            task_id="delete_again", brand_id=create.output, missing_ok=True
        )
        delete_strict = BloomDeleteBrandOperator(task_id="delete_strict", brand_id=create.output)
        create >> deferred >> poked >> listed >> delete >> delete_again >> delete_strict
    out = dag_run(dag)
    assert "Pausing task as DEFERRED" in out.log  # the trigger did the waiting

    brand_id = out.xcom("create")
    assert isinstance(brand_id, str) and len(brand_id) == UUID_LEN
    for task in ("wait_poke", "wait_deferred"):
        assert out.states[task] == "success", out.errors
        assert out.xcom(task)["id"] == brand_id and out.xcom(task)["status"] == "ready"
        assert out.xcom(task)["url"].startswith("https://acme-")
    assert {b["id"] for b in out.xcom("list")} >= {brand_id, DEFAULT_BRAND_ID}
    assert {b["status"] for b in out.xcom("list")} == {"ready"}
    assert out.xcom("delete")["id"] == brand_id and out.xcom("delete")["deleted"] is True
    assert out.xcom("delete_again") == {"id": brand_id, "name": None, "deleted": False}
    assert out.states["delete_strict"] == "failed" and out.tries["delete_strict"] == 1
    assert "BRAND_NOT_FOUND" in out.error("delete_strict")
    assert by_op(bloom_conn, "brands.create") == 1


def test_onboarding_that_fails_fails_the_sensor_with_blooms_code(bloom_conn, dag_run, request):
    bloom_conn.configure(brand_ready_seconds=2.0)
    with bloom_dag(request.node.name) as dag:
        create = BloomCreateBrandOperator(task_id="create", url="https://fail-brand.example.com")
        deferred = BloomBrandSensor(
            task_id="deferred", brand_id=create.output, deferrable=True, defer_after=0, min_defer_seconds=0
        )
        poke = BloomBrandSensor(
            task_id="poke", brand_id=create.output, poke_interval=0.1, trigger_rule="all_done"
        )
        create >> deferred >> poke  # the deferred one first, while the brand is still analyzing
        BloomCreateBrandOperator(task_id="bad_url", url="{{ 'not a url' }}")
        BloomBrandSensor(task_id="bad_id", brand_id="{{ 'brand-1' }}")
        BloomBrandSensor(
            task_id="unknown", brand_id=str(uuid.uuid4()), deferrable=True, defer_after=0, min_defer_seconds=0
        )
    out = dag_run(dag)

    assert "Pausing task as DEFERRED" in out.log
    for task in ("poke", "deferred"):
        assert out.states[task] == "failed" and out.tries[task] == 1, out.errors
        assert "failed to onboard: Bloom SCRAPE_FAILED" in out.error(task)
        assert "fail-brand.example.com" in out.error(task)
    assert out.states["bad_url"] == "failed" and "Invalid url" in out.error("bad_url")
    assert out.states["bad_id"] == "failed" and "Invalid brand_id" in out.error("bad_id")
    assert out.states["unknown"] == "failed" and "BRAND_NOT_FOUND" in out.error("unknown")
    assert out.tries["bad_url"] == out.tries["bad_id"] == out.tries["unknown"] == 1
    assert by_op(bloom_conn, "brands.create") == 1


def test_logo_required_says_what_to_do_and_a_new_logo_makes_the_brand_ready(
    bloom_conn, dag_run, tmp_path, request
):
    logo_png = tmp_path / "logo.png"
    logo_png.write_bytes(make_png(256, 256))
    logo_svg = tmp_path / "logo.svg"
    logo_svg.write_bytes(make_svg(120, 40))
    bad_logo = tmp_path / "logo.txt"
    bad_logo.write_text("not an image")
    hook = BloomHook()
    token_brand = hook.create_brand("https://logo-required-token.example.com")["id"]
    hook.get_brand(token_brand, wait=True, timeout=10)
    token = bloom_conn.mint_upload_token("logo", brand_id=token_brand)

    with bloom_dag(request.node.name) as dag:
        create = BloomCreateBrandOperator(task_id="create", url="https://logo-required.example.com")
        strict = BloomBrandSensor(task_id="strict", brand_id=create.output, poke_interval=0.1)
        lenient = BloomBrandSensor(
            task_id="lenient",
            brand_id=create.output,
            accept_logo_required=True,
            deferrable=True,
            defer_after=0,
            min_defer_seconds=0,
        )
        by_url = BloomUpdateBrandLogoOperator(
            task_id="by_url", brand_id=create.output, logo_url="https://acme.example.com/logo.png"
        )
        ready = BloomBrandSensor(
            task_id="ready", brand_id=create.output, deferrable=True, defer_after=0, min_defer_seconds=0
        )
        by_file = BloomUpdateBrandLogoOperator(
            task_id="by_file", brand_id=create.output, logo_file=str(logo_svg)
        )
        by_token = BloomUpdateBrandLogoOperator(
            task_id="by_token", brand_id=token_brand, logo_file=logo_png, upload_token=token
        )
        token_ready = BloomBrandSensor(task_id="token_ready", brand_id=token_brand, poke_interval=0.1)
        BloomUpdateBrandLogoOperator(
            task_id="invalid_logo", brand_id=create.output, logo_url="https://x.example/invalid-logo.png"
        )
        BloomUpdateBrandLogoOperator(
            task_id="both", brand_id=create.output, logo_url="https://x.example/a.png", logo_file=logo_png
        )
        BloomUpdateBrandLogoOperator(task_id="not_image", brand_id=create.output, logo_file=bad_logo)
        create >> [strict, lenient]
        lenient >> by_url >> ready >> by_file
        by_token >> token_ready
    out = dag_run(dag)

    brand_id = out.xcom("create")
    assert out.states["strict"] == "failed" and out.tries["strict"] == 1
    message = out.error("strict")
    assert f"Bloom brand {brand_id}" in message and "needs a logo" in message
    assert f"BloomUpdateBrandLogoOperator(brand_id='{brand_id}'" in message
    # Bloom cannot generate with a logo_required brand: the advice never says to go on without one.
    assert "without a logo" not in message and "409 BRAND_NOT_READY" in message
    assert out.states["lenient"] == "success" and out.xcom("lenient")["status"] == "logo_required"
    assert out.xcom("by_url")["id"] == brand_id
    assert out.states["ready"] == "success" and out.xcom("ready")["status"] == "ready"
    assert out.xcom("ready")["logoUrl"]
    assert out.states["by_file"] == "success" and out.xcom("by_file")["id"] == brand_id
    assert out.states["token_ready"] == "success", out.errors
    assert "INVALID_LOGO" in out.error("invalid_logo")
    assert "pass exactly one of them" in out.error("both")
    assert "is not an image" in out.error("not_image")
    assert {out.tries[t] for t in ("invalid_logo", "both", "not_image")} == {1}
    seen = bloom_conn.requests()["by_operation"]
    assert (
        seen["brands.updateLogo"],
        seen["brands.uploadLogoFile"],
        seen["brands.uploadLogoFileSigned"],
    ) == (
        2,
        1,
        1,
    )
