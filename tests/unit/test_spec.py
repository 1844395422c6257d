"""Every constraint of Bloom's spec is checked before anything is sent."""

from __future__ import annotations

import io

import pytest

from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.client.transport import BloomClient
from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.exceptions import BloomInputError

UUID = "11111111-2222-4333-8444-555555555555"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64

BAD_CALLS = [
    ("generate_images", {"prompt": ""}, "prompt", "at least 1"),
    ("generate_images", {"prompt": "x" * 2001}, "prompt", "at most 2000"),
    ("generate_images", {"prompt": "p", "aspect_ratio": "7:3"}, "aspect_ratio", "'16:9'"),
    ("generate_images", {"prompt": "p", "image_size": "8K"}, "image_size", "'2K', '4K'"),
    ("generate_images", {"prompt": "p", "model": "turbo"}, "model", "'fast'"),
    ("generate_images", {"prompt": "p", "variant_count": 0}, "variant_count", "between 1 and 5"),
    ("generate_images", {"prompt": "p", "variant_count": 6}, "variant_count", "between 1 and 5"),
    ("generate_images", {"prompt": "p", "variant_count": 2.5}, "variant_count", "whole number"),
    (
        "generate_images",
        {"prompt": "p", "reference_image_ids": [UUID] * 11},
        "reference_image_ids",
        "at most 10",
    ),
    ("generate_images", {"prompt": "p", "reference_image_ids": ["nope"]}, "reference_image_ids[0]", "UUID"),
    ("generate_images", {"prompt": "p", "brand_session_id": "brand"}, "brand_session_id", "UUID"),
    (
        "edit_image",
        {"image_id": UUID, "prompt": "p", "reference_image_ids": [UUID] * 10},
        "reference_image_ids",
        "at most 9",
    ),
    ("edit_image", {"image_id": "abc", "prompt": "p"}, "image_id", "UUID"),
    ("resize_image", {"image_id": UUID, "target_aspect_ratio": "1:3"}, "target_aspect_ratio", "'9:16'"),
    ("search_images", {"query": ""}, "query", "at least 1"),
    ("search_images", {"query": "q" * 501}, "query", "at most 500"),
    ("search_images", {"query": "q", "limit": 51}, "limit", "between 1 and 50"),
    ("search_images", {"query": "q", "max_distance": 2.5}, "max_distance", "between 0 and 2"),
    ("list_images", {"status": "done"}, "status", "'completed'"),
    ("list_images", {"action_type": "crop"}, "action_type", "'resize'"),
    ("list_images", {"source": "ai"}, "source", "'generated'"),
    ("list_images", {"limit": 0}, "limit", "between 1 and 100"),
    ("list_images", {"ids": [UUID] * 51}, "ids", "between 1 and 50"),
    ("list_images", {"ids": ["x"]}, "ids[0]", "UUID"),
    ("list_images", {"ids": [UUID], "wait": True, "timeout": 296}, "timeout", "between 1 and 295"),
    ("get_image", {"image_id": UUID, "wait": True, "timeout": 0}, "timeout", "between 1 and 295"),
    ("get_brand", {"brand_id": "b", "wait": True}, "brand_id", "UUID"),
    ("list_brands", {"limit": 101}, "limit", "between 1 and 100"),
    ("list_brands", {"workspace_id": ""}, "workspace_id", "at least 1"),
    ("delete_images", {"ids": []}, "ids", "between 1 and 50"),
    ("create_brand", {"url": "acme.com"}, "url", "http(s) URL"),
    ("create_brand", {"url": "https://acme.com", "logo_url": "ftp://x/logo.png"}, "logo_url", "http(s) URL"),
    ("update_brand_logo", {"brand_id": UUID, "logo_url": "not a url"}, "logo_url", "http(s) URL"),
    ("upload_image", {"image_url": "file:///etc/passwd"}, "image_url", "http(s) URL"),
    ("upload_image_file", {"file": b"GIF89a...."}, "file", "not an image"),
    ("upload_image_file", {"file": b""}, "file", "empty"),
    ("upload_image_file", {"file": PNG + b"\0" * (10 * 1024 * 1024)}, "file", "10 MB"),
    ("upload_image_file", {"file": "/no/such/file.png"}, "file", "no such file"),
    ("upload_image_file", {"file": io.StringIO("text")}, "file", "binary mode"),
    ("upload_image_file_signed", {"token": "t", "file": PNG}, "token", "UUID"),
    ("upload_brand_logo_file", {"brand_id": UUID, "file": b"<html></html>"}, "file", "not an image"),
    # RFC 3986 as strictly as Bloom's `format: uri`
    ("upload_image", {"image_url": "http://[::1"}, "image_url", "not a valid URL"),
    ("upload_image", {"image_url": "https://a.example:80x/i.png"}, "image_url", "not a valid URL"),
    *[
        ("upload_image", {"image_url": f"https://a.example/i{char}.png"}, "image_url", "may not contain")
        for char in [" ", '"', "|", "<", ">", "{", "}", "\\", "^", "`", "é", "\t", "\n"]
    ],
    ("upload_image", {"image_url": "https://a.example/i%zz.png"}, "image_url", "'%'"),
    ("upload_image", {"image_url": "https://a.example/i%4.png"}, "image_url", "'%'"),
    ("create_brand", {"url": "https://a.example/#a#b"}, "url", "'#'"),
    ("create_brand", {"url": "https://a.example/[x]"}, "url", "'['"),
    # anchored UUIDs: a trailing newline is not part of an id
    ("get_image", {"image_id": UUID + "\n"}, "image_id", "UUID"),
    ("generate_images", {"prompt": "p", "brand_session_id": UUID + "\n"}, "brand_session_id", "UUID"),
    # numbers: nan/inf pass a range check by accident
    ("search_images", {"query": "q", "max_distance": float("nan")}, "max_distance", "finite"),
    ("search_images", {"query": "q", "max_distance": float("inf")}, "max_distance", "finite"),
    # text that cannot be sent as UTF-8
    ("generate_images", {"prompt": "a \ud800 cat"}, "prompt", "not valid Unicode"),
    ("list_images", {"cursor": "c\udcff"}, "cursor", "not valid Unicode"),
    (
        "upload_image_file",
        {"file": io.TextIOWrapper(io.BytesIO(PNG + b"\xff\xfe"), encoding="utf-8")},
        "file",
        "binary mode",
    ),
]


@pytest.mark.parametrize(("method", "kwargs", "field", "problem"), BAD_CALLS, ids=lambda v: str(v)[:40])
def test_bad_input_is_refused_before_sending(bloom_emulator, bloom_api_key, method, kwargs, field, problem):
    client = BloomClient(
        ClientSettings(
            base_url=bloom_emulator.base_url, api_key=bloom_api_key, brand_session_id=DEFAULT_BRAND_ID
        )
    )
    before = bloom_emulator.requests()["total"]
    with pytest.raises(BloomInputError) as info:
        getattr(client, method)(**kwargs)
    assert info.value.field == field
    assert problem in str(info.value), str(info.value)
    assert str(info.value).startswith(f"Invalid {field}:")
    assert bloom_emulator.requests()["total"] == before, "nothing may be sent for bad input"


def test_missing_brand_session_names_the_connection_extra(bloom_emulator, bloom_api_key):
    client = BloomClient(ClientSettings(base_url=bloom_emulator.base_url, api_key=bloom_api_key))
    with pytest.raises(BloomInputError, match="brand_session_id.*connection's brand_session_id extra"):
        client.generate_images("a prompt")
    assert bloom_emulator.requests()["total"] == 0


def test_svg_is_accepted_for_logos_but_not_for_image_uploads(bloom_emulator, bloom_api_key):
    client = BloomClient(ClientSettings(base_url=bloom_emulator.base_url, api_key=bloom_api_key))
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    with pytest.raises(BloomInputError, match="image/svg"):
        client.upload_image_file(svg, brand_session_id=DEFAULT_BRAND_ID)
    call = client.prepare("brands.uploadLogoFile", path={"id": DEFAULT_BRAND_ID}, file=svg)
    assert call.upload is not None and call.upload.mime == "image/svg+xml"


def test_comma_separated_ids_are_accepted_and_sent_as_one_parameter():
    client = BloomClient(ClientSettings(base_url="http://127.0.0.1:9/api/v1", api_key="bloom_sk_x"))
    call = client.prepare(
        "images.list", query={"ids": f"{UUID}, {DEFAULT_BRAND_ID}", "wait": True, "timeout": 200}
    )
    assert call.params == {"ids": f"{UUID},{DEFAULT_BRAND_ID}", "wait": "true", "timeout": "200"}
    assert call.read_timeout > 200, "a long-poll needs a read timeout above its wait"


def test_a_bad_base_url_is_an_input_error_not_a_value_error():
    with pytest.raises(BloomInputError) as info:
        ClientSettings(base_url="http://[::1", api_key="bloom_sk_x")
    assert info.value.field == "host"


# -- operator and sensor arguments ------------------------------------------------------------


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1, 0])
def test_wait_timeout_must_be_positive_and_finite(timeout):
    from airflow_provider_bloom.operators.images import BloomGenerateImageOperator

    with pytest.raises(BloomInputError) as info:
        BloomGenerateImageOperator(task_id="g", prompt="p", wait_for_completion=True, wait_timeout=timeout)
    assert info.value.field == "wait_timeout"


def test_image_sensor_checks_literal_ids_when_the_dag_is_built():
    from airflow_provider_bloom.sensors.images import BloomImageSensor

    with pytest.raises(BloomInputError) as info:
        BloomImageSensor(task_id="s", image_ids=["not-a-uuid"])
    assert info.value.field == "image_ids"
    with pytest.raises(BloomInputError):
        BloomImageSensor(task_id="s2", image_ids="../../etc/x")
    # templated ids are checked once rendered
    BloomImageSensor(task_id="s3", image_ids="{{ ti.xcom_pull('g') }}")
    BloomImageSensor(task_id="s4", image_ids=[UUID])


@pytest.mark.parametrize("prompts", ["abc", "12 prompts", "3.5", "-2"])
def test_credits_sensor_refuses_a_prompts_string_that_is_not_a_number(prompts):
    from airflow_provider_bloom.sensors.credits import BloomCreditsSensor

    sensor = BloomCreditsSensor(task_id="c", prompts=prompts)
    with pytest.raises(BloomInputError) as info:
        sensor.required()
    assert info.value.field == "prompts"


@pytest.mark.parametrize(("prompts", "needed"), [("7", 7.0), ("['a', 'b']", 2.0), (["a", "b", "c"], 3.0)])
def test_credits_sensor_reads_rendered_numbers_and_lists(prompts, needed):
    from airflow_provider_bloom.sensors.credits import BloomCreditsSensor

    assert BloomCreditsSensor(task_id="c", prompts=prompts).required()[0] == needed


def test_download_name_template_holding_a_url_is_refused_when_the_dag_is_built():
    from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator, render_name

    with pytest.raises(BloomInputError) as info:
        BloomDownloadImagesOperator(
            task_id="d",
            image_ids=[UUID],
            destination="/tmp/x",
            name_template="https://evil.example/{image_id}{ext}",
        )
    assert info.value.field == "name_template"
    with pytest.raises(BloomInputError, match="not a URL"):
        render_name("s3://bucket/{image_id}{ext}", UUID, 0, ".png")


def test_download_name_template_with_a_dot_before_ext_has_no_double_dot():
    from airflow_provider_bloom.operators.download import render_name

    assert render_name("{image_id}.{ext}", UUID, 0, ".png") == f"{UUID}.png"
    assert render_name("{image_id}{ext}", UUID, 0, ".svg") == f"{UUID}.svg"
    assert render_name("out/{index}-{image_id}.{ext}", UUID, 3, ".webp") == f"out/3-{UUID}.webp"
