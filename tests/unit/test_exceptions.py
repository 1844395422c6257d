"""Error parsing: both of Bloom's envelopes, non-JSON bodies, 402 action URLs, Retry-After."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from airflow_provider_bloom.exceptions import (
    BloomAPIError,
    BloomAuthError,
    BloomConflictError,
    BloomForbiddenError,
    BloomNotFoundError,
    BloomPaymentError,
    BloomRateLimitError,
    BloomServerError,
    BloomValidationError,
    error_from_response,
    parse_retry_after,
)


def flat(status: int, code: str, message: str = "m", data: object = None) -> bytes:
    return json.dumps(
        {"defined": True, "code": code, "status": status, "message": message, "data": data}
    ).encode()


def nested(status: int, code: str, message: str = "m") -> bytes:
    return json.dumps({"error": {"code": code, "status": status, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "SAME_ASPECT_RATIO", BloomValidationError),
        (401, "UNAUTHORIZED", BloomAuthError),
        (402, "INSUFFICIENT_CREDITS", BloomPaymentError),
        (403, "FEATURE_NOT_ENTITLED", BloomForbiddenError),
        (403, "ACCOUNT_BANNED", BloomForbiddenError),
        (404, "IMAGE_NOT_FOUND", BloomNotFoundError),
        (409, "BRAND_NOT_READY", BloomConflictError),
        (422, "BRAND_NOT_FOUND", BloomNotFoundError),  # Bloom's 422 flavour of not-found
        (404, "BRAND_NOT_FOUND", BloomNotFoundError),
        (429, "TOO_MANY_REQUESTS", BloomRateLimitError),
        (500, "INTERNAL_ERROR", BloomServerError),
        (503, "SOMETHING_NEW", BloomServerError),
    ],
)
@pytest.mark.parametrize("envelope", [flat, nested])
def test_both_envelopes_map_to_the_class_of_their_meaning(status, code, cls, envelope):
    err = error_from_response(status, envelope(status, code, "why"), "application/json", operation_id="x.y")
    assert type(err) is cls
    assert (err.status, err.code, err.message) == (status, code, "why")
    assert code in str(err) and f"HTTP {status}" in str(err) and "x.y" in str(err)


def test_permanent_errors_are_flagged_and_transient_ones_are_not():
    assert error_from_response(401, flat(401, "UNAUTHORIZED"), None).permanent
    assert error_from_response(409, flat(409, "BRAND_NOT_READY"), None).permanent
    assert not error_from_response(429, flat(429, "TOO_MANY_REQUESTS"), None).permanent
    assert not error_from_response(502, b"", None).permanent


def test_402_carries_action_url_into_the_message():
    body = flat(
        402, "INSUFFICIENT_CREDITS", "Not enough credits", {"action_url": "https://bloom.example/pricing"}
    )
    err = error_from_response(402, body, "application/json")
    assert isinstance(err, BloomPaymentError)
    assert err.action_url == "https://bloom.example/pricing"
    assert "https://bloom.example/pricing" in str(err)


def test_html_from_a_proxy_becomes_a_clear_error_with_the_status():
    err = error_from_response(502, b"<html><body>Bad gateway</body></html>", "text/html; charset=utf-8")
    assert isinstance(err, BloomServerError)
    assert err.status == 502 and err.code is None
    assert "text/html" in str(err) and "Bad gateway" in str(err)


def test_empty_body_is_reported_as_such():
    err = error_from_response(503, b"", None)
    assert isinstance(err, BloomServerError)
    assert "empty body" in str(err)


def test_unknown_4xx_keeps_status_and_code():
    err = error_from_response(418, flat(418, "TEAPOT"), "application/json")
    assert type(err) is BloomAPIError and err.code == "TEAPOT" and err.status == 418


def test_paid_5xx_is_marked_maybe_charged_with_how_to_check():
    err = error_from_response(500, flat(500, "INTERNAL_ERROR"), None, paid=True)
    assert err.maybe_charged
    assert "may have" in str(err) and "list recent images" in str(err)
    assert not error_from_response(500, flat(500, "INTERNAL_ERROR"), None).maybe_charged


def test_retry_after_in_seconds_and_as_http_date():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    err = error_from_response(429, flat(429, "TOO_MANY_REQUESTS"), None, retry_after="3")
    assert err.retry_after == 3.0
