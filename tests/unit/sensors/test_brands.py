"""The brand sensor's advice, its behaviour and the emulator agree with Bloom's spec:
only a ``ready`` brand can generate; ``logo_required`` needs a logo first."""

from __future__ import annotations

import pytest
from airflow.exceptions import AirflowFailException

from airflow_provider_bloom.emulator import BRAND_LOGO_REQUIRED_MARKER
from airflow_provider_bloom.exceptions import BloomConflictError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.sensors.brands import BloomBrandSensor

BRAND = "3f2b8c1e-0000-4000-8000-000000000001"


def test_the_spec_says_only_ready_brands_generate():
    from airflow_provider_bloom.client.spec import load_spec

    description = load_spec()["paths"]["/brands/{id}"]["get"]["description"]
    assert 'When status is "ready", the brand can generate images' in description
    assert 'If status is "logo_required", provide a logo' in description


def test_a_logo_required_brand_cannot_generate_until_it_has_a_logo(bloom_conn):
    hook = BloomHook()
    brand_id = hook.create_brand(f"https://{BRAND_LOGO_REQUIRED_MARKER}.example.com")["id"]
    assert hook.get_brand(brand_id, wait=True, timeout=10)["status"] == "logo_required"
    with pytest.raises(BloomConflictError) as info:
        hook.generate_images("a test image", brand_session_id=brand_id)
    assert info.value.code == "BRAND_NOT_READY" and "logo" in info.value.message
    hook.update_brand_logo(brand_id, "https://acme.example.com/logo.png")
    assert hook.get_brand(brand_id, wait=True, timeout=10)["status"] == "ready"
    assert hook.generate_images("a test image", brand_session_id=brand_id)["ids"]


def test_the_sensor_advice_on_logo_required_is_to_give_a_logo():
    sensor = BloomBrandSensor(task_id="s", brand_id=BRAND)
    with pytest.raises(AirflowFailException) as info:
        sensor.decide({"id": BRAND, "status": "logo_required", "logoError": "No logo found."})
    message = str(info.value)
    assert f"BloomUpdateBrandLogoOperator(brand_id='{BRAND}'" in message
    assert "409 BRAND_NOT_READY" in message and "(No logo found)," in message
    assert "accept_logo_required" not in message and "without a logo" not in message


def test_accept_logo_required_returns_the_record_with_a_warning(caplog, capsys):
    sensor = BloomBrandSensor(task_id="s", brand_id=BRAND, accept_logo_required=True)
    done = sensor.decide({"id": BRAND, "status": "logo_required"})
    assert done.is_done and done.xcom_value["status"] == "logo_required"  # type: ignore[union-attr]
    captured = capsys.readouterr()
    assert "cannot generate images until it has a logo" in caplog.text + captured.out + captured.err


def test_a_failure_message_has_no_doubled_period():
    sensor = BloomBrandSensor(task_id="s", brand_id=BRAND)
    with pytest.raises(AirflowFailException) as info:
        sensor.decide(
            {
                "id": BRAND,
                "status": "failed",
                "failure": {
                    "code": "SCRAPE_FAILED",
                    "message": "We could not read this website (emulated failure).",
                },
            }
        )
    assert "(emulated failure). Check the URL" in str(info.value)
    assert ".." not in str(info.value)
