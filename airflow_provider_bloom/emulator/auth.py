"""Who is calling (API key or OAuth token) and whether they are over the rate limit."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from airflow_provider_bloom.emulator.config import API_KEY_PREFIX, OAUTH_CLIENT_PREFIX, EmulatorConfig
from airflow_provider_bloom.emulator.errors import EmulatorError
from airflow_provider_bloom.emulator.observe import key_fingerprint
from airflow_provider_bloom.emulator.state import Store


@dataclass(frozen=True)
class Principal:
    fingerprint: str


def credential(headers: Mapping[str, str]) -> str | None:
    """The key from ``x-api-key``, else the ``Authorization: Bearer`` token."""
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def authenticate(headers: Mapping[str, str], config: EmulatorConfig, store: Store) -> Principal:
    """The caller, or 401 ``UNAUTHORIZED`` / 403 ``ACCOUNT_BANNED``."""
    key = credential(headers)
    if key is None:
        raise EmulatorError(401, "UNAUTHORIZED", "Missing API key: send x-api-key or Authorization: Bearer")
    if key in config.banned_keys:
        raise EmulatorError(403, "ACCOUNT_BANNED")
    token_state = store.oauth_token_state(key)
    if token_state == "expired":
        raise EmulatorError(401, "UNAUTHORIZED", "Access token expired")
    if token_state is None and not _valid_key(key, config):
        raise EmulatorError(401, "UNAUTHORIZED")
    return Principal(key_fingerprint(key))


def _valid_key(key: str, config: EmulatorConfig) -> bool:
    if config.valid_keys is not None:
        return key in config.valid_keys
    return key.startswith(API_KEY_PREFIX) and len(key) > len(API_KEY_PREFIX)


def valid_oauth_client(client_id: str, client_secret: str, config: EmulatorConfig) -> bool:
    if config.oauth_clients is not None:
        return bool(client_id) and config.oauth_clients.get(client_id) == client_secret
    return client_id.startswith(OAUTH_CLIENT_PREFIX) and bool(client_secret)


class RateLimiter:
    """A sliding-window log per caller: at most ``limit`` requests in any ``window`` seconds.

    Bounded: at most ``max_callers`` callers are tracked (the least recently seen one is
    forgotten first), and each caller's log holds at most ``limit`` times.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_callers: int = 10_000) -> None:
        self._clock = clock
        self.max_callers = max_callers
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def reset(self) -> None:
        self._hits.clear()

    @property
    def tracked(self) -> int:
        return len(self._hits)

    def hit(self, caller: str, limit: int, window: float) -> float | None:
        """Record a request; ``None`` when allowed, else seconds until a slot frees up."""
        now = self._clock()
        hits = self._hits.get(caller)
        if hits is None:
            hits = self._hits[caller] = deque()
            while len(self._hits) > self.max_callers:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(caller)
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            return max(0.0, hits[0] + window - now)
        hits.append(now)
        return None
