"""One rule for "known when the DAG is parsed", applied the same way by every operator and sensor."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator
from airflow_provider_bloom.operators.images import (
    BloomEditImageOperator,
    BloomGenerateImageOperator,
    BloomRemoveBackgroundOperator,
    BloomResizeImageOperator,
)
from airflow_provider_bloom.sensors.images import BloomImageSensor
from airflow_provider_bloom.tasks.base import DEFAULT_CONN_ID, known_at_parse_time

ID = str(uuid.uuid4())


def test_known_at_parse_time():
    for value in (None, 3, 2.5, True, "a kite", [ID, [ID]], (ID,), []):
        assert known_at_parse_time(value), value
    for value in ("{{ params.p }}", "{% if x %}a{% endif %}", [ID, "{{ x }}"], {"id": ID}, object()):
        assert not known_at_parse_time(value), value


def test_an_xcomarg_is_not_known_at_parse_time():
    with DAG("known_at_parse_time", schedule=None):
        upstream = BloomGenerateImageOperator(task_id="g", prompt="a kite")
    assert not known_at_parse_time(upstream.output)
    assert not known_at_parse_time([upstream.output])


# (operator, arguments with a bad literal, the field named, the same value as a template)
CASES: list[tuple[type, dict[str, Any], str, dict[str, Any]]] = [
    (
        BloomGenerateImageOperator,
        {"prompt": "p", "variant_count": 9},
        "variant_count",
        {"variant_count": "{{ 9 }}"},
    ),
    (BloomGenerateImageOperator, {"prompt": "p", "reference_image_ids": ["x"]}, "reference_image_ids", {}),
    (BloomResizeImageOperator, {"image_ids": ID, "target_aspect_ratio": "9:17"}, "target_aspect_ratio", {}),
    (BloomEditImageOperator, {"image_ids": ID, "prompt": "p", "image_size": "8K"}, "image_size", {}),
    (BloomRemoveBackgroundOperator, {"image_ids": [[ID], ["nope"]]}, "image_ids", {"image_ids": "{{ 'x' }}"}),
    (BloomImageSensor, {"image_ids": [[ID], ["nope"]]}, "image_ids", {"image_ids": "{{ 'x' }}"}),
    (
        BloomDownloadImagesOperator,
        {"image_ids": ID, "destination": "/tmp", "name_template": "{bad}"},
        "name_template",
        {},
    ),
]


@pytest.mark.parametrize(("operator", "kwargs", "field", "templated"), CASES)
def test_a_bad_literal_fails_when_the_dag_is_parsed_and_a_template_waits(operator, kwargs, field, templated):
    with pytest.raises(BloomInputError) as info:
        operator(task_id="t", **kwargs)
    assert info.value.field == field
    value = kwargs[field]
    template = templated or {field: "{{ " + repr(value) + " }}"}
    operator(task_id="t2", **{**kwargs, **template})  # checked once rendered, when the task runs


def test_the_operators_default_connection_is_the_hooks():
    assert DEFAULT_CONN_ID == BloomHook.default_conn_name
    assert BloomGenerateImageOperator(task_id="g", prompt="p").bloom_conn_id == BloomHook.default_conn_name
