"""The request budget (:mod:`airflow_provider_bloom.logic.pacing`): token buckets on a fake clock, a batch's
pace, credential fingerprints, and a task paced by its bucket."""

from __future__ import annotations

import functools
import uuid
from collections import deque

import pytest

from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.logic.pacing import TokenBucket, batch_bucket, credential_fingerprint, take_sync
from tests.helpers import API_KEY, OTHER_KEY, conn_json


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_its_burst_then_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock)
    assert bucket.capacity == 6
    assert [bucket.try_take() for _ in range(6)] == [0.0] * 6
    assert bucket.try_take() == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.try_take() == 0.0
    # In any 60 s: at most burst + rate requests.
    clock.now += 100
    sent = 0
    for _ in range(600):
        if bucket.try_take() == 0.0:
            sent += 1
        clock.now += 0.1
    assert sent <= 6 + 60


def test_a_429_pauses_once_then_halves_the_rate_for_a_minute():
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock)
    assert bucket.penalize(retry_after=3.0) is True
    assert bucket.penalize(retry_after=3.0) is False  # answers to requests sent before the pause
    assert bucket.penalties == 1
    assert bucket.try_take() > 3.0
    clock.now += 3.0 + 2.0  # 2 s at half rate = 1 token
    assert bucket.try_take() == 0.0
    assert bucket.try_take() == pytest.approx(2.0)
    clock.now += 120
    assert bucket.penalize() is True
    assert 2.5 <= bucket.paused_until - clock.now <= 5.0  # no Retry-After: a jittered few seconds


def test_bucket_refuses_nonsense():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            TokenBucket(bad)


@pytest.mark.parametrize("per_minute", [60, 120, 6000])
def test_the_pace_reaches_the_rate_given_and_no_window_holds_more(per_minute: int):
    """A fake clock; a sender that takes every token the moment it is due, for three minutes."""
    now = [0.0]
    bucket = batch_bucket(per_minute)
    bucket.clock = lambda: now[0]
    bucket._stamp = 0.0
    sent: list[float] = []
    while now[0] < 180.0:
        wait = bucket.try_take()
        if wait <= 0:
            sent.append(now[0])
        else:
            now[0] += max(wait, 1e-6)  # as a real sleep, which always lets some time pass
    window: deque[float] = deque()
    worst = 0
    for moment in sent:
        window.append(moment)
        while window[0] <= moment - 60.0:
            window.popleft()
        worst = max(worst, len(window))
    assert worst <= per_minute  # Bloom's limit is a sliding 60 s window
    assert len(sent) / 3 >= 0.9 * per_minute


def test_fingerprints_never_contain_the_secret_and_tell_credentials_apart():
    a = ClientSettings(api_key=API_KEY)
    b = ClientSettings(api_key=OTHER_KEY)
    oauth = ClientSettings(oauth_client_id="client", oauth_client_secret="s3cret-value")
    assert len({a.fingerprint, b.fingerprint, oauth.fingerprint}) == 3
    for settings, secret in ((a, API_KEY), (b, OTHER_KEY), (oauth, "s3cret-value")):
        assert secret not in settings.fingerprint and secret not in repr(settings)
    assert credential_fingerprint("x") == credential_fingerprint("x")


def test_a_task_that_deletes_many_images_is_paced_by_its_bucket(bloom_conn, monkeypatch):
    """BloomDeleteImagesOperator over 200 ids (4 requests) with requests_per_minute=2 (burst 1): the first
    request goes at once, each later one waits for a token (~30 s, on a fake clock here)."""
    import airflow_provider_bloom.tasks.base as base
    from airflow_provider_bloom.operators.library import BloomDeleteImagesOperator

    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, requests_per_minute=2))
    clock = FakeClock()
    bucket = TokenBucket(2, burst=1, clock=clock)
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(base, "sync_bucket", lambda url, fingerprint, per_minute: bucket)
    monkeypatch.setattr(base, "take_sync", functools.partial(take_sync, sleep=fake_sleep))
    ids = [str(uuid.uuid4()) for _ in range(200)]
    result = BloomDeleteImagesOperator(task_id="cleanup", image_ids=ids).execute({})
    assert result == {"requested": 200, "deleted_count": 0}
    assert bloom_conn.requests()["by_operation"]["images.deleteMany"] == 4
    assert len(sleeps) == 3 and all(s == pytest.approx(30.0) for s in sleeps)
    assert bucket.sent == 4
