"""The one retry policy: which errors asking again may fix, and how long to wait before asking again.

Every place that asks Bloom again reads it: the client's own retries (:mod:`.core`), the sync wait
(:meth:`BloomHook.wait_for_images <airflow_provider_bloom.hooks.bloom.BloomHook.wait_for_images>`),
the triggerer's wait hub (:mod:`airflow_provider_bloom.triggers.hub`) and the request budget's pause
after a 429 (:meth:`TokenBucket.penalize <airflow_provider_bloom.logic.pacing.TokenBucket.penalize>`).

Transient (:func:`is_transient`): a 429 (Bloom refused the request and did nothing), a 5xx or an
answer that is not a valid Bloom answer, and a network failure other than a failed TLS handshake.
Nothing else: any other 4xx (a 413 included) answers the request itself, so the same request gets the
same answer. Bloom's spec documents no 413; one comes from a proxy or load balancer refusing the
body or URL size, which sending the same bytes again cannot change.

A paid POST (:func:`may_send_again`) is sent again only when Bloom provably did nothing: a 429, or a
request that never left this machine (refused connection, DNS, connect timeout). Every other failure
of a paid call may have been charged (Bloom has no idempotency key).

Backoff (:func:`backoff`): Bloom's ``Retry-After`` when it sends one (it documents none, so honour
one if present), never more than :data:`MAX_RETRY_AFTER`; else jittered exponential backoff: half to
all of ``base * 2 ** (failures - 1)``, at most ``cap``.

No HTTP library and no Airflow here: cheap to import, the same decisions in a worker and a triggerer.
"""

from __future__ import annotations

import random
from typing import TypeGuard

from airflow_provider_bloom.client.spec import PAID_OPERATIONS
from airflow_provider_bloom.exceptions import (
    BloomAPIError,
    BloomRateLimitError,
    BloomServerError,
    BloomTransportError,
)

#: The longest ``Retry-After`` honoured (seconds); a longer one is cut to this.
MAX_RETRY_AFTER = 120.0
#: The longest computed backoff pause (seconds), unless a caller asks for a shorter cap.
MAX_BACKOFF = 30.0


def is_transient(exc: BaseException) -> TypeGuard[BloomAPIError | BloomTransportError]:
    """True when sending the same request again may succeed: 429, 5xx or invalid answer, network."""
    if isinstance(exc, BloomTransportError):
        return exc.retryable  # a failed TLS handshake fails the same way again
    return isinstance(exc, (BloomRateLimitError, BloomServerError))


def may_send_again(exc: BaseException, operation_id: str | None = None) -> bool:
    """True when the request that raised ``exc`` may be sent again as it is.

    A transient error of a free call, or of a paid call only when Bloom provably did nothing with
    it: a 429, or a request that never reached Bloom. An error that says the call may have been
    charged is never sent again.
    """
    if not is_transient(exc) or exc.maybe_charged:
        return False
    paid = (operation_id or exc.operation_id) in PAID_OPERATIONS
    return not paid or isinstance(exc, (BloomRateLimitError, BloomTransportError))


def retry_after(exc: BaseException) -> float | None:
    """The pause Bloom asked for with this error's ``Retry-After`` (seconds), if any."""
    return exc.retry_after if isinstance(exc, BloomAPIError) else None


def backoff(
    failures: int,
    *,
    base: float,
    cap: float = MAX_BACKOFF,
    retry_after: float | None = None,
    left: float | None = None,
) -> float:
    """Seconds to wait after the ``failures``-th failure in a row before asking again.

    ``retry_after`` (Bloom's ``Retry-After``) wins when given, cut to :data:`MAX_RETRY_AFTER`; else
    half to all of ``base * 2 ** (failures - 1)``, at most ``cap``. ``left``: never past a deadline
    that many seconds away.
    """
    if retry_after is not None:
        delay = min(max(0.0, float(retry_after)), MAX_RETRY_AFTER)
    else:
        delay = random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, failures - 1))  # noqa: S311
    return max(0.0, delay if left is None else min(delay, left))


__all__ = ["MAX_BACKOFF", "MAX_RETRY_AFTER", "backoff", "is_transient", "may_send_again", "retry_after"]
