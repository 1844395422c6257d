"""The never-pay-twice ledger keyed by the prepared call: the same request is recognised across tries
(also from what earlier versions stored), a changed one is sent anew. Prepared calls only: nothing is sent."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.client.transport import BloomClient
from airflow_provider_bloom.emulator.png import make_png
from airflow_provider_bloom.tasks.ledger import PaidRequestLedger

BRAND, IMAGE, WORKSPACE = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
PNG = make_png(64, 64)
LOG = logging.getLogger("test_ledger")


class _Store(dict):
    def set(self, key: str, value: Any) -> None:
        self[key] = value


def _client(**settings: Any) -> BloomClient:
    return BloomClient(ClientSettings(base_url="http://127.0.0.1:9/api/v1", api_key="key-1234", **settings))


def _never() -> dict[str, Any]:
    raise AssertionError("the ledger sent a request it had already paid for")


def _ledger(store: _Store, max_tries: int = 1) -> PaidRequestLedger:
    ti, task = type("TI", (), {"max_tries": max_tries}), type("Task", (), {"retries": 1})
    return PaidRequestLedger({"task_state_store": store, "ti": ti, "task": task}, LOG)


# Each case: how an operator prepares the call.
CASES = {
    "generate": lambda c: c.prepare("images.generate", body={"prompt": "a kite", "aspect_ratio": "1:1"}),
    "resize": lambda c: c.prepare("images.resize", path={"id": IMAGE}, body={"target_aspect_ratio": "9:16"}),
    "upload_url": lambda c: c.prepare("images.upload", body={"image_url": "https://example.com/a.png"}),
    "upload_file": lambda c: c.prepare("images.uploadFile", body={}, file=PNG),
    "create_brand": lambda c: c.prepare("brands.create", body={"url": "https://acme.com"}),
    "logo_url": lambda c: c.prepare(
        "brands.updateLogo", path={"id": BRAND}, body={"logo_url": "https://acme.com/l.png"}
    ),
    "logo_file": lambda c: c.prepare("brands.uploadLogoFile", path={"id": BRAND}, file=PNG),
}


class _CountingStore(_Store):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.reads.append(key)
        return super().get(key, default)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_paid_call_reads_one_key_its_own(case):
    """The ledger looks up one key per paid call (the call's identity and clear round), and a retry
    finds the answer there: no other keys are read on the way to Bloom."""
    call = CASES[case](_client(brand_session_id=BRAND, workspace_id=WORKSPACE))
    store = _CountingStore()
    answer = _ledger(store).pay(call, lambda: {"id": "new"})
    assert _ledger(store).pay(call, _never) == answer
    assert len(store.reads) == 2 and len(set(store.reads)) == 1


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_prepared_request_is_paid_once_per_round(case):
    prepare = CASES[case]
    client, store, sent = _client(brand_session_id=BRAND), _Store(), []

    def send() -> dict[str, Any]:
        sent.append(1)
        return {"id": f"new-{len(sent)}"}

    first = _ledger(store).pay(prepare(client), send)
    assert _ledger(store).pay(prepare(client), send) == first  # prepared again by a retry: reused
    assert _ledger(store, max_tries=5).pay(prepare(client), send) != first  # a clear pays again
    assert len(sent) == 2


def test_a_changed_request_is_sent_anew():
    """Every part of the call is in the key: body, path, the file's bytes, the brand."""
    client, store, sent = _client(brand_session_id=BRAND), _Store(), []

    def send() -> dict[str, Any]:
        sent.append(1)
        return {"id": str(len(sent))}

    calls = [
        client.prepare("images.generate", body={"prompt": "a kite"}),
        client.prepare("images.generate", body={"prompt": "a kite", "variant_count": 2}),
        client.prepare("images.removeBackground", path={"id": IMAGE}),
        client.prepare("images.removeBackground", path={"id": str(uuid.uuid4())}),
        client.prepare("images.uploadFile", body={}, file=PNG),
        client.prepare("images.uploadFile", body={}, file=make_png(64, 64, tint=9)),
        _client(brand_session_id=str(uuid.uuid4())).prepare("images.uploadFile", body={}, file=PNG),
    ]
    answers = [_ledger(store).pay(call, send)["id"] for call in calls]
    assert answers == [str(n) for n in range(1, len(calls) + 1)]
