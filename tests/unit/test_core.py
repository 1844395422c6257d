"""The client's shared decisions (``client/core.py``): what a transport failure means, what goes on the wire.

Both transports (httpx's sync and async clients) call these; the end-to-end behaviour against the emulator
is in the retry, fault and paid-answer tests.
"""

from __future__ import annotations

import pytest

from airflow_provider_bloom.client.core import PreparedCall, _ClientCore, caused_by_tls
from airflow_provider_bloom.client.retry import may_send_again
from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.exceptions import BloomTransportError

BASE = "http://127.0.0.1:9/api/v1"
IMAGE_ID = "3f2b6c1e-9a4d-4e8b-8f2a-0c1d2e3f4a5b"


@pytest.fixture
def core() -> _ClientCore:
    return _ClientCore(ClientSettings(base_url=BASE, api_key="bloom_sk_secret"))


def _failure(core: _ClientCore, operation_id: str, *, tls: bool, never_sent: bool) -> BloomTransportError:
    call = core.prepare(
        operation_id,
        path={"id": IMAGE_ID},
        body={"prompt": "a red kite", "brand_session_id": IMAGE_ID}
        if operation_id == "images.edit"
        else None,
    )
    error = core.transport_failure(call.op, call.url, ConnectionError("boom"), tls=tls, never_sent=never_sent)
    assert isinstance(error, BloomTransportError)
    return error


@pytest.mark.parametrize(
    ("operation_id", "tls", "never_sent", "retried", "maybe_charged"),
    [
        # A paid POST is sent again only when it provably never left.
        ("images.edit", False, True, True, False),
        ("images.edit", False, False, False, True),
        ("images.edit", True, False, False, False),
        # A safe call is retried after a lost answer too, but never after a TLS failure.
        ("images.get", False, True, True, False),
        ("images.get", False, False, True, False),
        ("images.get", True, False, False, False),
    ],
)
def test_a_transport_failure_decides_retry_and_charge(
    core, operation_id, tls, never_sent, retried, maybe_charged
):
    error = _failure(core, operation_id, tls=tls, never_sent=never_sent)
    assert may_send_again(error) is retried
    assert error.maybe_charged is maybe_charged
    assert "127.0.0.1:9" in str(error) and operation_id in str(error)


def test_a_tls_failure_says_nothing_was_sent(core):
    error = _failure(core, "images.get", tls=True, never_sent=False)
    assert "TLS handshake with 127.0.0.1:9 failed, nothing was sent" in str(error)


def test_tls_is_found_in_the_cause_chain():
    import ssl

    try:
        try:
            raise ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
        except ssl.SSLError as inner:
            raise OSError("connect failed") from inner
    except OSError as outer:
        assert caused_by_tls(outer)
    assert not caused_by_tls(OSError("connection refused"))


def test_request_args_carry_a_json_body_or_a_multipart_upload(core):
    generate = core.prepare("images.generate", body={"prompt": "a kite", "brand_session_id": IMAGE_ID})
    args = generate.request_args()
    assert args["method"] == "POST" and args["url"] == f"{BASE}/images/generations"
    assert args["json"] == {"prompt": "a kite", "brandSessionId": IMAGE_ID}
    assert args["files"] is None and args["data"] is None

    png = b"\x89PNG\r\n\x1a\n" + bytes(24)  # the client sniffs the magic bytes only
    upload = core.prepare("images.uploadFile", body={"brand_session_id": IMAGE_ID}, file=png)
    args = upload.request_args()
    assert args["json"] is None
    assert args["data"] == {"brandSessionId": IMAGE_ID}
    assert args["files"] == {"file": ("upload.png", png, "image/png")}


def test_a_prepared_call_shows_no_credentials(core):
    call = core.prepare("account.get")
    assert isinstance(call, PreparedCall)
    assert repr(call) == f"<PreparedCall GET {BASE}/account>"
    assert "secret" not in repr(call.request_args())
