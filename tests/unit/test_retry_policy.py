"""The one retry policy (:mod:`airflow_provider_bloom.client.retry`): the client, the waits, the hub
and the request budget all read it."""

from __future__ import annotations

import pytest

from airflow_provider_bloom.client.retry import MAX_RETRY_AFTER, backoff, is_transient, may_send_again
from airflow_provider_bloom.exceptions import (
    BloomImagesMissingError,
    BloomRateLimitError,
    BloomServerError,
    BloomTransportError,
    error_from_response,
)
from airflow_provider_bloom.logic.pacing import TokenBucket


def answer(status: int, operation_id: str = "images.list", paid: bool = False):
    return error_from_response(status, b"", "text/html", operation_id=operation_id, paid=paid)


@pytest.mark.parametrize(
    ("status", "transient"), [(429, True), (500, True), (503, True), (413, False), (400, False)]
)
def test_one_definition_of_transient(status, transient):
    """A proxy's 413 gets the same answer again: neither the client nor a wait asks again."""
    assert is_transient(answer(status)) is transient
    assert may_send_again(answer(status)) is transient


def test_failed_tls_and_missing_ids_are_not_transient():
    tls = BloomTransportError("handshake failed")
    tls.retryable = False
    assert not is_transient(tls) and not is_transient(BloomImagesMissingError(["x"]))
    assert is_transient(BloomTransportError("refused"))


def test_a_paid_post_is_sent_again_only_when_bloom_provably_did_nothing():
    assert may_send_again(answer(429, "images.generate", paid=True))
    assert may_send_again(BloomTransportError("refused", operation_id="images.generate"))
    assert not may_send_again(answer(503, "images.generate", paid=True))
    assert not may_send_again(BloomServerError(502, None, "bad gateway", operation_id="images.generate"))
    assert not may_send_again(BloomTransportError("lost", operation_id="images.generate", maybe_charged=True))


def test_one_retry_after_cap_for_the_client_the_waits_and_the_budget():
    limited = BloomRateLimitError(429, "TOO_MANY_REQUESTS", "slow down", retry_after=900.0)
    assert backoff(1, base=1.0, retry_after=limited.retry_after) == MAX_RETRY_AFTER
    clock_now = [0.0]
    bucket = TokenBucket(60, clock=lambda: clock_now[0])
    bucket.penalize(retry_after=900.0)
    assert bucket.paused_until == MAX_RETRY_AFTER
    assert backoff(30, base=0.5) <= 30.0 and backoff(1, base=0.5, left=0.1) <= 0.1
