"""The retry policy, counted on the emulator: safe calls retry, paid POSTs never retry blindly."""

from __future__ import annotations

import time

import pytest

from airflow_provider_bloom.client.transport import AsyncBloomClient, BloomClient
from airflow_provider_bloom.exceptions import (
    BloomRateLimitError,
    BloomServerError,
    BloomTransportError,
)
from tests.helpers import by_op, fast_settings, free_port


def make_client(emulator, key, **overrides) -> BloomClient:
    return BloomClient(fast_settings(emulator.base_url, key, **overrides))


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_get_is_retried_on_429_and_5xx(bloom_emulator, bloom_api_key, status):
    bloom_emulator.add_fault("account.get", "status", count=2, status=status)
    assert make_client(bloom_emulator, bloom_api_key).get_account()["email"]
    assert by_op(bloom_emulator, "account.get") == 3


@pytest.mark.parametrize("kind", ["cut_before", "cut_after", "truncate"])
def test_get_is_retried_after_a_cut_or_truncated_answer(bloom_emulator, bloom_api_key, kind):
    bloom_emulator.add_fault("credits.get", kind, count=1)
    assert "balance" in make_client(bloom_emulator, bloom_api_key).get_credits()
    assert by_op(bloom_emulator, "credits.get") == 2


def test_retries_stop_at_max_retries(bloom_emulator, bloom_api_key):
    bloom_emulator.add_fault("account.get", "status", count=10, status=503)
    with pytest.raises(BloomServerError) as info:
        make_client(bloom_emulator, bloom_api_key, max_retries=2).get_account()
    assert info.value.status == 503
    assert by_op(bloom_emulator, "account.get") == 3


def test_retries_stop_at_the_total_deadline(bloom_emulator, bloom_api_key):
    bloom_emulator.add_fault("account.get", "status", count=50, status=429, retry_after="1")
    client = make_client(bloom_emulator, bloom_api_key, max_retries=20, retry_deadline=1.5)
    with pytest.raises(BloomRateLimitError):
        client.get_account()
    assert by_op(bloom_emulator, "account.get") == 2  # waits of 1 s: the deadline allows one retry


def test_retry_after_is_honoured(bloom_emulator, bloom_api_key):
    bloom_emulator.add_fault("account.get", "status", count=1, status=429, retry_after="1")
    started = time.monotonic()
    make_client(bloom_emulator, bloom_api_key).get_account()
    assert time.monotonic() - started >= 0.9  # waited what Bloom asked, not the 10 ms backoff
    assert by_op(bloom_emulator, "account.get") == 2


def test_paid_post_is_retried_on_429_only(bloom_emulator, bloom_api_key):
    bloom_emulator.add_fault("images.generate", "status", count=2, status=429)
    started = make_client(bloom_emulator, bloom_api_key).generate_images("retry me")
    assert started["ids"]
    assert by_op(bloom_emulator, "images.generate") == 3
    assert bloom_emulator.requests()["paid_posts"] >= 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_paid_post_answered_5xx_is_not_retried_and_says_it_may_be_charged(
    bloom_emulator, bloom_api_key, status
):
    bloom_emulator.add_fault("images.generate", "status", count=1, status=status)
    with pytest.raises(BloomServerError) as info:
        make_client(bloom_emulator, bloom_api_key).generate_images("do not repeat me")
    assert info.value.maybe_charged
    assert "may have" in str(info.value) and "charged" in str(info.value)
    assert by_op(bloom_emulator, "images.generate") == 1


@pytest.mark.parametrize("kind", ["cut_after", "cut_before", "truncate"])
def test_paid_post_whose_answer_is_lost_is_not_retried(bloom_emulator, bloom_api_key, kind):
    bloom_emulator.set_credits(100)
    balance = 100
    bloom_emulator.add_fault("images.generate", kind, count=1)
    client = make_client(bloom_emulator, bloom_api_key)
    with pytest.raises(BloomTransportError) as info:
        client.generate_images("lost answer")
    assert info.value.maybe_charged and "list recent images" in str(info.value)
    assert by_op(bloom_emulator, "images.generate") == 1
    charged = balance - client.get_credits()["balance"]
    # cut_after/truncate: Bloom did the paid work; cut_before: it did not. Either way: charged at most once.
    assert charged == (0 if kind == "cut_before" else 1)


def test_paid_post_is_retried_when_the_connection_was_refused(bloom_api_key):
    """Nothing listened, so the request provably never reached Bloom: safe to retry."""
    port = free_port()
    attempts = []

    settings = fast_settings(
        f"http://127.0.0.1:{port}/api/v1", bloom_api_key, max_retries=2, backoff_max=0.02
    )
    client = BloomClient(settings)
    send = client.http.send

    def counting(request, **kwargs):
        attempts.append(request.url)
        return send(request, **kwargs)

    client.http.send = counting  # type: ignore[method-assign]
    with pytest.raises(BloomTransportError) as info:
        client.generate_images("never sent")
    assert not info.value.maybe_charged
    assert len(attempts) == 3


def test_other_4xx_are_never_retried(bloom_emulator, bloom_api_key):
    bloom_emulator.set_credits(0)
    client = make_client(bloom_emulator, bloom_api_key)
    with pytest.raises(Exception) as info:
        client.generate_images("no money")
    assert getattr(info.value, "code", None) == "INSUFFICIENT_CREDITS"
    assert by_op(bloom_emulator, "images.generate") == 1


async def test_async_client_follows_the_same_policy(bloom_emulator, bloom_api_key):
    settings = fast_settings(bloom_emulator.base_url, bloom_api_key)
    bloom_emulator.add_fault("account.get", "status", count=2, status=503)
    bloom_emulator.add_fault("images.generate", "cut_after", count=1)
    async with AsyncBloomClient(settings) as client:
        assert (await client.get_account())["email"]
        with pytest.raises(BloomTransportError) as info:
            await client.generate_images("async lost answer")
    assert info.value.maybe_charged
    assert by_op(bloom_emulator, "account.get") == 3
    assert by_op(bloom_emulator, "images.generate") == 1
