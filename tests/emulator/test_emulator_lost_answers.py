"""What reconciling lost answers needs from the emulator: list order, createdAt precision, a Date
header from the emulated clock, lists that lag, and a 5xx after the work was done."""

from __future__ import annotations

import time
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx
import pytest

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID, EmulatorAdminError
from airflow_provider_bloom.emulator.server import EmulatorServer

from ._helpers import data, error, generate


def _generated(api: httpx.Client, **params: str) -> list[dict]:
    images: list[dict] = data(api.get("/images", params={"actionType": "generation", **params}))["images"]
    return images


def test_lists_are_newest_first_with_millisecond_created_at(api: httpx.Client) -> None:
    ids = [generate(api, prompt=f"p{i}")["ids"][0] for i in range(3)]
    listed = _generated(api)
    assert [r["id"] for r in listed] == ids[::-1]
    stamps = [r["createdAt"] for r in listed]
    assert all(len(s) == len("2026-01-01T00:00:00.000Z") and s.endswith("Z") for s in stamps)
    parsed = [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps]
    assert parsed == sorted(parsed, reverse=True)


def test_every_answer_has_a_date_header_from_the_emulated_clock(
    bloom_emulator: EmulatorServer, api: httpx.Client
) -> None:
    date = parsedate_to_datetime(api.get("/account").headers["date"]).timestamp()
    assert abs(date - time.time()) < 2
    bloom_emulator.configure(clock_offset_seconds=-3600)
    bloom_emulator.reset()
    answer = api.post("/images/generations", json={"prompt": "p", "brandSessionId": DEFAULT_BRAND_ID})
    date = parsedate_to_datetime(answer.headers["date"]).timestamp()
    assert abs(date - (time.time() - 3600)) < 2
    (record,) = _generated(api)
    created = datetime.fromisoformat(record["createdAt"].replace("Z", "+00:00")).timestamp()
    assert date <= created < date + 1  # Date is whole seconds of the same clock
    error_answer = api.get("/images/00000000-0000-4000-8000-000000000000")
    assert "date" in error_answer.headers and error_answer.status_code == 404


def test_new_images_show_up_in_filtered_lists_late_but_by_id_at_once(
    bloom_emulator: EmulatorServer, api: httpx.Client
) -> None:
    bloom_emulator.configure(list_delay_seconds=0.5)
    (image_id,) = generate(api)["ids"]
    assert _generated(api) == []
    assert [r["id"] for r in data(api.get("/images", params={"ids": image_id}))["images"]] == [image_id]
    assert data(api.get(f"/images/{image_id}"))["id"] == image_id
    time.sleep(0.6)
    assert [r["id"] for r in _generated(api)] == [image_id]


def test_status_after_answers_a_5xx_once_the_work_is_done(
    bloom_emulator: EmulatorServer, api: httpx.Client
) -> None:
    bloom_emulator.add_fault("images.generate", "status_after", status=502)
    answer = api.post("/images/generations", json={"prompt": "p", "brandSessionId": DEFAULT_BRAND_ID})
    error(answer, 502, "BAD_GATEWAY")
    assert len(_generated(api)) == 1  # ... but the image exists
    assert data(api.get("/credits"))["balance"] == 999  # ... and was charged
    seen = bloom_emulator.requests()
    assert (seen["paid_posts"], seen["paid_posts_effective"]) == (1, 1)
    assert seen["by_operation_status"]["images.generate"] == {"502": 1}


def test_status_after_needs_a_5xx(bloom_emulator: EmulatorServer) -> None:
    with pytest.raises(EmulatorAdminError, match="between 500 and 599"):
        bloom_emulator.add_fault("images.generate", "status_after", status=429)
