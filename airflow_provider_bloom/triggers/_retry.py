"""The pause a trigger takes before re-issuing a long-poll after a transient error."""

from __future__ import annotations

import random

from airflow_provider_bloom.exceptions import BloomAPIError, BloomError

#: Longest pause between re-issues after a transient error.
MAX_RETRY_DELAY = 30.0


def transient_delay(exc: BloomError, failures: int, base: float, left: float) -> float:
    """Bloom's ``Retry-After`` when given, else jittered exponential backoff; never past the deadline."""
    retry_after = exc.retry_after if isinstance(exc, BloomAPIError) else None
    if retry_after is not None:
        delay = float(retry_after)
    else:
        delay = random.uniform(0.5, 1.0) * min(MAX_RETRY_DELAY, base * 2 ** (failures - 1))  # noqa: S311
    return max(0.0, min(delay, MAX_RETRY_DELAY, left))
