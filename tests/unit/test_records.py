"""Status enums, their terminal rules and the record helpers of ``airflow_provider_bloom.logic.records``."""

from __future__ import annotations

import json

import pytest

from airflow_provider_bloom.client.spec import load_spec
from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.logic.records import (
    BRAND_RECORD_FIELDS,
    EVENT_STATUSES,
    IMAGE_RECORD_FIELDS,
    BrandStatus,
    EventStatus,
    ImageStatus,
    answer_ids,
    flatten_image_ids,
    slim_brand,
    slim_record,
    valid_answer,
)

ID = "0b9c6f1e-8d2a-4c3b-9e7f-1a2b3c4d5e6f"
OTHER = "1c0d7a2f-9e3b-4d4c-8f80-2b3c4d5e6f70"


def response_status_enum(path: str) -> list[str]:
    """The ``status`` enum of ``GET path``'s 200 answer in the shipped spec."""
    schema = load_spec()["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    status = schema["properties"]["data"]["properties"]["status"]
    return next(s["enum"] for s in status.get("anyOf", [status]) if "enum" in s)


@pytest.mark.parametrize(
    ("enum", "path"), [(ImageStatus, "/images/{id}"), (BrandStatus, "/brands/{id}")], ids=["image", "brand"]
)
def test_status_enums_hold_exactly_the_spec_values(enum: type, path: str) -> None:
    assert sorted(member.value for member in enum) == sorted(response_status_enum(path))


def test_terminal_rules() -> None:
    assert [s.value for s in ImageStatus if ImageStatus.is_terminal(s)] == ["completed", "failed"]
    terminal_brands = [s.value for s in BrandStatus if BrandStatus.is_terminal(s)]
    assert terminal_brands == ["ready", "logo_required", "failed"]
    assert all(EventStatus.is_terminal(s) for s in EVENT_STATUSES)
    # Bloom's JSON gives plain strings; anything else (a missing or odd status) is not terminal
    assert ImageStatus.is_terminal("completed") and not ImageStatus.is_terminal("generating")
    assert not ImageStatus.is_terminal(None) and not ImageStatus.is_terminal(["completed"])
    assert not BrandStatus.is_terminal("completed")  # an image status is not a brand status


def test_members_are_their_strings_in_comparisons_text_and_json() -> None:
    assert ImageStatus.FAILED == "failed" and "ready" == BrandStatus.READY
    assert {"status": "timeout"}["status"] in {EventStatus.TIMEOUT}
    assert f"{EventStatus.ERROR}" == str(EventStatus.ERROR) == "error"
    assert json.loads(json.dumps({"status": ImageStatus.COMPLETED})) == {"status": "completed"}
    assert EVENT_STATUSES == ("success", "failed", "timeout", "error")
    assert all(type(s) is str for s in EVENT_STATUSES)


def test_slim_record_keeps_the_xcom_fields_and_drops_signed_urls() -> None:
    signed = "https://cdn.example/x.png?sig=1"
    record = {"id": ID, "status": "completed", "imageUrl": signed, "extra": [1] * 99}
    slim = slim_record(record)
    assert tuple(slim) == IMAGE_RECORD_FIELDS and "extra" not in slim
    assert slim["imageUrl"] is None
    assert slim_record(record, include_urls=True)["imageUrl"] == record["imageUrl"]
    short = {**record, "imageUrl": f"https://www.trybloom.ai/img/{ID}"}
    assert slim_record(short)["imageUrl"] == short["imageUrl"]


def test_slim_brand_keeps_only_code_and_message_of_a_failure() -> None:
    brand = {"id": ID, "status": "failed", "failure": {"code": "SCRAPE_FAILED", "message": "m", "trace": "x"}}
    slim = slim_brand(brand)
    assert tuple(slim) == BRAND_RECORD_FIELDS
    assert slim["failure"] == {"code": "SCRAPE_FAILED", "message": "m"}
    assert slim_brand({"id": ID})["status"] is None


def test_flatten_image_ids_accepts_what_dags_pass_around() -> None:
    nested = [[ID], [{"id": OTHER}], {"image_ids": [ID]}, None]
    assert flatten_image_ids(nested) == [ID, OTHER]
    with pytest.raises(BloomInputError, match="image_ids.*no image ids"):
        flatten_image_ids([])
    with pytest.raises(BloomInputError, match="refs.*without an 'id'"):
        flatten_image_ids([{"name": "x"}], "refs")


def test_an_accepted_answer_names_its_images_by_ids_or_by_one_id() -> None:
    assert answer_ids({"ids": ["a", "b"]}) == ["a", "b"] and answer_ids({"id": "c"}) == ["c"]
    assert valid_answer({"ids": ["a"]}) and valid_answer({"id": "c"})
    bad = [None, [], {}, {"ids": []}, {"ids": ["a", ""]}, {"ids": [1]}, {"id": ""}, {"id": 3}]
    assert not any(valid_answer(answer) for answer in bad)
