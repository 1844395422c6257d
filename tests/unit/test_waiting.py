"""The shared wait state machine (:mod:`airflow_provider_bloom.logic.waiting`), I/O-free."""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_provider_bloom.client.retry import backoff, is_transient, retry_after
from airflow_provider_bloom.exceptions import BloomImagesMissingError, BloomRateLimitError, BloomServerError
from airflow_provider_bloom.logic.waiting import PendingImages


def test_image_wait_tracks_pending_ids_and_orders_records():
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    state = PendingImages([a, b, c, a])
    assert state.ids == [a, b, c] and state.batches() == [[a, b, c]]
    state.apply(
        [a, b, c],
        {
            "images": [
                {"id": a, "status": "completed"},
                {"id": b, "status": "generating"},
                {"id": c, "status": "failed"},
            ]
        },
    )
    assert state.pending == [b]
    assert [r["id"] for r in state.ordered()] == [a, b, c]
    assert state.event()["status"] == "timeout"
    state.apply(
        [b], {"images": [{"id": b, "status": "completed"}, {"id": "someone-else", "status": "completed"}]}
    )
    assert state.done
    assert state.event()["status"] == "failed"
    assert "1 of 3" in state.event()["message"]


def test_image_wait_names_ids_bloom_did_not_return():
    a, ghost = str(uuid.uuid4()), str(uuid.uuid4())
    state = PendingImages([a, ghost])
    with pytest.raises(BloomImagesMissingError) as err:
        state.apply([a, ghost], {"images": [{"id": a, "status": "completed"}]})
    assert err.value.missing == [ghost] and err.value.permanent
    assert state.pending == [ghost]


def test_image_wait_asks_in_chunks_of_fifty():
    ids = [str(uuid.uuid4()) for _ in range(120)]
    assert [len(b) for b in PendingImages(ids).batches()] == [50, 50, 20]


def test_transient_errors_and_their_backoff():
    limited = BloomRateLimitError(429, "TOO_MANY_REQUESTS", "slow down", retry_after=7.0)
    server = BloomServerError(503, None, "busy")
    assert is_transient(limited) and is_transient(server)
    assert not is_transient(BloomImagesMissingError(["x"]))
    assert backoff(1, base=1.0, retry_after=retry_after(limited), left=100) == 7.0
    assert backoff(1, base=1.0, retry_after=retry_after(limited), left=2) == 2.0  # never past the deadline
    delays = [backoff(n, base=1.0, retry_after=retry_after(server), left=100) for n in range(1, 10)]
    assert all(0 <= d <= 30 for d in delays)
    assert delays[-1] >= 15  # grown to the 30 s cap (jitter keeps it within half of it)


def test_event_payloads_are_json_and_small():
    a = str(uuid.uuid4())
    state = PendingImages([a])
    state.apply(
        [a],
        {
            "images": [
                {
                    "id": a,
                    "status": "completed",
                    "imageUrl": "https://signed.example/x?sig=1",
                    "extra": "x" * 1000,
                }
            ]
        },
    )
    event = state.event()
    assert json.loads(json.dumps(event)) == event
    assert "extra" not in event["images"][0] and event["images"][0]["imageUrl"] is None
