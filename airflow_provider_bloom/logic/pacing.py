"""Request budgets: one token bucket per Bloom credential, so that no process floods Bloom's limit.

Bloom allows 120 requests per minute per key (sliding window) and answers 429 beyond it. Two places
send many requests on one key:

* the triggerer's wait hub (:mod:`airflow_provider_bloom.triggers.hub`), which spends at most
  ``wait_requests_per_minute`` (connection extra, default 60) on long-polls and sweeps;
* a worker that sends many requests in one task (``BloomRemoveBackgroundOperator`` over 200 ids,
  ``BloomDeleteImagesOperator``, uploads of many files), paced at ``requests_per_minute`` (connection
  extra, default 60, with a burst of a third of it) by those operators' loops;
* a batch task (:mod:`airflow_provider_bloom.operators.batch`), paced by :func:`batch_bucket` at
  ``requests_per_minute`` with a small burst and 2% to spare.

:class:`TokenBucket` is I/O-free: it is given the time and answers how long to wait, so that the
async hub and the sync client share it and tests drive it with a fake clock. In any 60 s window a
bucket lets through at most ``burst + rate`` requests (66 for the hub, 80 for a worker with the
defaults), which leaves room for the other side of the same key.

A 429 slows the whole bucket down once (:meth:`TokenBucket.penalize`): it empties, pauses for Bloom's
``Retry-After`` (or a jittered few seconds: the one backoff of :mod:`airflow_provider_bloom.client.retry`)
and runs at half its rate for a minute. Further 429s that
arrive during the pause (answers to requests sent before it) change nothing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from airflow_provider_bloom.client.retry import backoff

#: Bloom's documented limit per key.
BLOOM_REQUESTS_PER_MINUTE = 120
#: Default share of it for the triggerer's waits, and for one worker's own requests.
DEFAULT_WAIT_REQUESTS_PER_MINUTE = 60
DEFAULT_REQUESTS_PER_MINUTE = 60
#: Pause after a 429 without ``Retry-After`` (jittered between half and all of it).
DEFAULT_429_PAUSE = 5.0
#: How long a bucket runs at half its rate after a 429.
SLOW_AFTER_429 = 60.0


def burst_for(per_minute: int) -> int:
    """The bucket's capacity: a tenth of a minute's budget (6 for 60/min), at least 1."""
    return max(1, per_minute // 10)


class TokenBucket:
    """A token bucket of ``per_minute`` requests with ``burst`` capacity; I/O-free and thread-safe.

    :param per_minute: steady rate.
    :param burst: capacity (default :func:`burst_for`); the bucket starts full.
    :param clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(per_minute, bool) or not isinstance(per_minute, int) or per_minute < 1:
            raise ValueError(f"per_minute must be a whole number >= 1; got {per_minute!r}")
        self.per_minute = per_minute
        self.capacity = float(burst if burst is not None else burst_for(per_minute))
        self.clock = clock
        self.tokens = self.capacity
        self.paused_until = 0.0
        self.slow_until = 0.0
        self.sent = 0
        self.penalties = 0
        self._stamp = clock()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<TokenBucket {self.per_minute}/min burst={self.capacity:.0f}>"

    def _rate(self, now: float) -> float:
        rate = self.per_minute / 60.0
        return rate / 2 if now < self.slow_until else rate

    def _refill(self, now: float) -> None:
        start = max(self._stamp, self.paused_until)
        if now > start:
            self.tokens = min(self.capacity, self.tokens + (now - start) * self._rate(now))
        self._stamp = max(self._stamp, now)

    def available(self) -> float:
        """Tokens available now (fractional)."""
        with self._lock:
            now = self.clock()
            self._refill(now)
            return 0.0 if now < self.paused_until else self.tokens

    def try_take(self) -> float:
        """Take one token and return 0, or return the seconds until one is available."""
        with self._lock:
            now = self.clock()
            self._refill(now)
            if now < self.paused_until:
                return self.paused_until - now + (1.0 - min(self.tokens, 1.0)) / self._rate(now)
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                self.sent += 1
                return 0.0
            return (1.0 - self.tokens) / self._rate(now)

    def penalize(self, retry_after: float | None = None) -> bool:
        """Slow down after a 429; return False when already paused (one slowdown per episode)."""
        with self._lock:
            now = self.clock()
            if now < self.paused_until:
                return False
            pause = backoff(1, base=DEFAULT_429_PAUSE, retry_after=retry_after)
            self._refill(now)
            self.tokens = 0.0
            self.paused_until = now + pause
            self.slow_until = now + pause + SLOW_AFTER_429
            self._stamp = now
            self.penalties += 1
            return True


def credential_fingerprint(*secrets: str | None) -> str:
    """A short, one-way fingerprint of a credential, safe for names, logs and reprs."""
    digest = hashlib.sha256("\x00".join(s or "" for s in secrets).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:12]


_sync_buckets: dict[tuple[str, str, int], TokenBucket] = {}
_sync_lock = threading.Lock()


def sync_bucket(base_url: str, fingerprint: str, per_minute: int) -> TokenBucket:
    """The process-wide bucket of one credential for the sync client (workers, sync hooks)."""
    key = (base_url, fingerprint, per_minute)
    with _sync_lock:
        bucket = _sync_buckets.get(key)
        if bucket is None:
            bucket = _sync_buckets[key] = TokenBucket(per_minute, burst=max(1, per_minute // 3))
        return bucket


def batch_bucket(per_minute: int, burst: bool = True) -> TokenBucket:
    """The pace of one batch task, within ``per_minute`` in every sliding 60 s window (Bloom's limit is
    such a window), with 2% of it to spare: requests that leave the task evenly can still reach Bloom
    bunched (threads, the network), and the task sends a few requests outside the pace (the balance).

    A burst of 2% of the budget at the start (none when ``burst`` is False: a try resumed right after
    a minute of requests), then ``per_minute`` less twice that, evenly spread.
    """
    capacity = max(1, per_minute // 50)
    bucket = TokenBucket(max(1, per_minute - 2 * capacity), burst=capacity)
    if not burst:
        bucket.tokens = 0.0
    return bucket


def take_sync(bucket: TokenBucket, sleep: Callable[[float], None] = time.sleep) -> float:
    """Block until the bucket gives a token; return the seconds waited (for the sync client only)."""
    waited = 0.0
    while True:
        delay = bucket.try_take()
        if delay <= 0:
            return waited
        sleep(delay)
        waited += delay
