"""The one price list (logic.prices), its connection override, and the emulator's charges."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_bloom.client import spec as client_spec
from airflow_provider_bloom.emulator import spec as emulator_spec
from airflow_provider_bloom.emulator.server import EmulatorServer
from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.hooks.connection import settings_from_connection
from airflow_provider_bloom.logic.prices import (
    CHARGED_OPERATIONS,
    credits_for,
    is_assumed,
    kind_of,
    parse_prices,
)


def test_paid_and_charged_are_one_list_each_read_by_the_client_and_the_emulator() -> None:
    """Paid (never sent twice) and charged (costs credits) are two notions, each one list.

    The client and the emulator (its ``paid_posts``) agree on every operation of the document; the
    paid list is what the document describes (every POST but the read-only search, and every request
    behind a single-use token: the signed logo PUT), and the charged ones are those that declare 402.
    """
    client_ops = client_spec.operations()
    emulator_ops = emulator_spec.operations()
    assert set(client_ops) == set(emulator_ops) and len(client_ops) == 23
    paid = {name for name, op in client_ops.items() if op.paid}
    assert paid == {name for name, op in emulator_ops.items() if op.paid} == client_spec.PAID_OPERATIONS
    assert {name for name, op in client_ops.items() if not op.authenticated} == {
        name for name, op in emulator_ops.items() if op.signed
    }
    single_use = {name for name, op in client_ops.items() if not op.authenticated}
    posts = {name for name, op in client_ops.items() if op.method == "POST"}
    assert paid == (posts - {"images.search"}) | single_use
    assert {name for name in paid if client_ops[name].method == "PUT"} == {"brands.uploadLogoFileSigned"}
    charged = {name for name, op in client_ops.items() if "402" in op.responses}
    assert set(CHARGED_OPERATIONS) == charged and charged < paid
    assert len(paid) == 10 and len(charged) == 5


@pytest.mark.parametrize(
    ("operation", "body", "source_size", "credits"),
    [
        ("images.generate", {}, None, 1),
        ("images.generate", {"imageSize": "4K", "variantCount": 3}, None, 6),
        ("generate", {"imageSize": "2K", "variantCount": 5}, None, 5),
        ("images.edit", {"imageSize": "4K"}, None, 2),
        ("images.edit", {}, None, 1),
        ("images.resize", {}, "2K", 1),
        ("images.resize", {}, "4K", 2),
        ("images.resize", {}, None, 2),  # unknown source size: the safe side
        ("images.removeBackground", {}, None, 1),
        ("remove_background", {}, None, 1),
        ("images.vectorize", {}, None, 1),
    ],
)
def test_default_prices(operation, body, source_size, credits) -> None:
    assert credits_for(operation, body, source_size) == credits


def test_overrides_replace_only_what_they_name() -> None:
    prices = parse_prices('{"images.resize": {"4K": 3}, "remove_background": 2, "vectorize": 0}')
    assert credits_for("images.resize", {}, "4K", prices) == 3
    assert credits_for("images.resize", {}, "2K", prices) == 1  # the 2K price is kept
    assert credits_for("images.removeBackground", prices=prices) == 2
    assert credits_for("images.vectorize", prices=prices) == 0
    assert credits_for("images.generate", {"variantCount": 2}, prices=prices) == 2
    assert is_assumed("images.resize") and not is_assumed("images.resize", prices)
    assert not is_assumed("images.generate")
    assert kind_of("images.removeBackground") == "remove_background"


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ("not json", "prices", "JSON object"),
        ("[1]", "prices", "object"),
        ({"images.upload": 1}, "prices", "not a paid Bloom operation"),
        ({"resize": -1}, "prices['resize']", ">= 0"),
        ({"resize": True}, "prices['resize']", "whole number"),
        ({"resize": {"8K": 1}}, "prices['resize']", "per image size"),
    ],
)
def test_bad_overrides_name_the_field(value, field, words) -> None:
    with pytest.raises(BloomInputError, match=words) as info:
        parse_prices(value)
    assert info.value.field == field


def test_connection_extra_reaches_the_settings() -> None:
    class Conn:
        host = "http://127.0.0.1:1"
        password = "bloom_sk_x"
        extra_dejson = {"prices": '{"images.vectorize": 2}'}

    assert settings_from_connection(Conn()).prices == {"images.vectorize": 2}
    Conn.extra_dejson = {"prices": {"images.upload": 1}}
    with pytest.raises(BloomInputError, match="prices"):
        settings_from_connection(Conn())


def test_emulator_charges_the_same_list_and_its_override(
    bloom_emulator: EmulatorServer, bloom_api_key: str
) -> None:
    from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID

    brand = {"brandSessionId": DEFAULT_BRAND_ID}

    def balance() -> float:
        return float(api.get("/credits").json()["data"]["balance"])

    with httpx.Client(
        base_url=bloom_emulator.base_url, headers={"x-api-key": bloom_api_key}, trust_env=False
    ) as api:
        bloom_emulator.configure(generation_seconds=0.05, prices={"images.vectorize": 3})
        start = balance()
        made = api.post(
            "/images/generations", json={"prompt": "p", "imageSize": "4K", "variantCount": 2, **brand}
        )
        assert made.status_code == 202 and balance() == start - credits_for(
            "generate", {"imageSize": "4K", "variantCount": 2}
        )
        (image_id, _) = made.json()["data"]["ids"]
        api.get("/images", params={"ids": image_id, "wait": "true", "timeout": 10})
        before = balance()
        assert api.post(f"/images/{image_id}/vectorize", json=brand).status_code == 202
        assert before - balance() == 3
        before = balance()
        assert (
            api.post(f"/images/{image_id}/resize", json={"targetAspectRatio": "16:9", **brand}).status_code
            == 202
        )
        assert before - balance() == credits_for("resize", source_size="4K") == 2
