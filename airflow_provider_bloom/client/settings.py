"""Client settings: everything a Bloom client needs, built from an Airflow connection by the hook.

Cheap to import (no HTTP stack): operators, sensors and triggers read settings at DAG-parse time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from airflow_provider_bloom import __version__
from airflow_provider_bloom.client.spec import DEFAULT_BASE_URL, OAUTH_TOKEN_PATH
from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.logic.pacing import (
    DEFAULT_REQUESTS_PER_MINUTE,
    DEFAULT_WAIT_REQUESTS_PER_MINUTE,
    credential_fingerprint,
)
from airflow_provider_bloom.logic.prices import Price

USER_AGENT = f"airflow-provider-bloom/{__version__}"
CONNECT_TIMEOUT = 10.0
# Extra read time granted on top of a long-poll's own timeout.
WAIT_READ_MARGIN = 30.0
MAX_REDIRECTS = 5
#: The largest request budget accepted (Bloom documents 120 per minute per key; a plan may allow more).
MAX_REQUESTS_PER_MINUTE = 60_000


@dataclass(frozen=True, repr=False)
class ClientSettings:
    """Everything a client needs; built from an Airflow connection by the hook."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    auth_header: str = "x-api-key"  # or "bearer"
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    oauth_token_url: str | None = None
    workspace_id: str | None = None
    brand_session_id: str | None = None
    timeout: float = 60.0
    max_retries: int = 5
    retry_deadline: float = 300.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: Requests per minute the triggerer's wait hub may send on this credential (Bloom allows 120).
    wait_requests_per_minute: int = DEFAULT_WAIT_REQUESTS_PER_MINUTE
    #: Requests per minute one task may send in a loop (post-processing, uploads, deletions).
    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE
    #: Price overrides by operation id (the connection's ``prices`` extra, checked by
    #: :func:`~airflow_provider_bloom.logic.prices.parse_prices`); empty: the provider's price list.
    prices: Mapping[str, Price] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.auth_header not in {"x-api-key", "bearer"}:
            raise BloomInputError("auth_header", f"must be 'x-api-key' or 'bearer'; got {self.auth_header!r}")
        try:
            parsed = urlparse(self.base_url)
            parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parsed = urlparse("")
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise BloomInputError("host", f"must be Bloom's base URL like {DEFAULT_BASE_URL}")
        if self.oauth_client_id and not self.oauth_client_secret:
            raise BloomInputError("oauth_client_secret", "is required with oauth_client_id")
        if self.max_retries < 0 or self.timeout <= 0:
            raise BloomInputError("max_retries/timeout", "must be >= 0 and > 0")
        for name in ("wait_requests_per_minute", "requests_per_minute"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 1 <= value <= MAX_REQUESTS_PER_MINUTE
            ):
                raise BloomInputError(
                    name,
                    f"must be a whole number between 1 and {MAX_REQUESTS_PER_MINUTE:,} (Bloom documents "
                    f"120 per key; set your key's real limit if your plan allows more); got {value!r}",
                )

    @property
    def fingerprint(self) -> str:
        """A one-way fingerprint of the credential (key, or OAuth client): safe in names and logs."""
        if self.uses_oauth:
            return credential_fingerprint(
                "oauth", self.oauth_client_id, self.oauth_client_secret, self.token_url
            )
        return credential_fingerprint("key", self.api_key, self.auth_header)

    @property
    def secrets(self) -> list[str]:
        """The configured credentials (the key, the OAuth client secret): never to be shown."""
        return [v for v in (self.api_key, self.oauth_client_secret) if v]

    @property
    def uses_oauth(self) -> bool:
        return bool(self.oauth_client_id)

    @property
    def token_url(self) -> str:
        if self.oauth_token_url:
            return self.oauth_token_url
        parsed = urlparse(self.base_url)
        return f"{parsed.scheme}://{parsed.netloc}{OAUTH_TOKEN_PATH}"

    def __repr__(self) -> str:  # never the key or the client secret
        auth = "oauth" if self.uses_oauth else (self.auth_header if self.api_key else "none")
        return f"ClientSettings(base_url={self.base_url!r}, auth={auth}, credential={self.fingerprint})"


def same_origin(a: str, b: str) -> bool:
    """Return whether two URLs share scheme, host and port (credentials go only to Bloom's origin)."""
    pa, pb = urlparse(a), urlparse(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_REDIRECTS",
    "USER_AGENT",
    "WAIT_READ_MARGIN",
    "ClientSettings",
    "same_origin",
]
