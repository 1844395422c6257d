"""Configuration of the Bloom emulator and the markers that steer its outcomes.

Every field has a default, so ``EmulatorConfig()`` is a usable, demo-speed Bloom.
Fields marked *(seed)* shape the state created at start and at ``POST /_emulator/reset``;
when they are patched at runtime (``POST /_emulator/config``) the emulator applies them to
the live state too (credits are reset to the new values, team workspaces are synced).
All other fields are read on every request.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.logic.prices import parse_prices

#: A prompt containing this marker ends ``failed`` with ``failureReason: content_safety`` on the models
#: ``pro`` (the default) and ``fast``, and completes on ``standard`` (Bloom's advice);
#: ``[content_safety:a,b]`` is refused on the models it names (see ``emulator.state.refused_on``).
CONTENT_SAFETY_MARKER = "[content_safety]"
#: A prompt containing this marker ends ``failed`` with ``failureReason: rate_limited``.
RATE_LIMITED_MARKER = "[rate_limited]"
#: A brand URL containing this marker ends ``failed`` with failure code ``SCRAPE_FAILED``.
BRAND_FAIL_MARKER = "fail-brand"
#: A brand URL containing this marker (and no ``logoUrl``) ends ``logo_required``.
BRAND_LOGO_REQUIRED_MARKER = "logo-required"
#: An image URL (``POST /images/uploads``) containing this marker answers 400 ``DOWNLOAD_FAILED``.
DOWNLOAD_FAILS_MARKER = "download-fails"
#: A logo URL (``PUT /brands/{id}/logo``) containing this marker answers 400 ``INVALID_LOGO``.
INVALID_LOGO_MARKER = "invalid-logo"

#: The READY brand every fresh emulator state contains.
DEFAULT_BRAND_ID = "00000000-0000-4000-8000-00000000b100"
DEFAULT_BRAND_NAME = "Emulated Brand"
#: The scraped library images of the default brand (fixed ids, like the brand's).
SEEDED_IMAGE_IDS = (
    "00000000-0000-4000-8000-00000000c101",
    "00000000-0000-4000-8000-00000000c102",
    "00000000-0000-4000-8000-00000000c103",
)
ACCOUNT_EMAIL = "dev@emulator.local"
API_KEY_PREFIX = "bloom_sk_"
OAUTH_CLIENT_PREFIX = "bloom_client_"
PRICING_URL = "https://www.trybloom.ai/pricing"

ErrorEnvelope = Literal["flat", "nested"]
SECRET_PLACEHOLDER = "***"

#: Fields that shape the seeded state (see the module docstring).
SEED_FIELDS = frozenset({"initial_credits", "unlimited_credits", "team_workspaces", "seed"})


@dataclass
class EmulatorConfig:
    """How the emulated Bloom behaves. All times are seconds."""

    #: Accepted API keys; ``None`` accepts any key starting ``bloom_sk_``.
    valid_keys: list[str] | None = None
    #: Keys answered with 403 ``ACCOUNT_BANNED``.
    banned_keys: list[str] = field(default_factory=list)
    #: Time from a paid POST to the image's terminal status.
    generation_seconds: float = 3.0
    #: Extra uniform random time added per image, in ``[0, generation_jitter]``.
    generation_jitter: float = 0.0
    #: Share of the generation time spent ``pending`` before ``generating``.
    pending_fraction: float = 0.2
    #: Time a brand stays ``analyzing`` (onboarding and logo updates).
    brand_ready_seconds: float = 5.0
    #: Requests per key per sliding window; ``None`` (or 0) turns rate limiting off.
    rate_limit_per_minute: int | None = 120
    #: Length of the sliding window.
    rate_limit_window_seconds: float = 60.0
    #: Send ``Retry-After`` with rate-limit 429s (Bloom documents none).
    rate_limit_retry_after: bool = False
    #: ``flat``: the spec's ``{"defined", "code", "status", "message", "data"}``;
    #: ``nested``: ``{"error": {"code", "status", "message", "data"}}`` as Bloom's prose shows.
    error_envelope: ErrorEnvelope = "flat"
    #: *(seed)* Credits of every workspace.
    initial_credits: float = 1000
    #: *(seed)* Every workspace has unlimited credits.
    unlimited_credits: bool = False
    #: The plan includes 4K; when False a 4K generate/edit answers 403 ``FEATURE_NOT_ENTITLED``.
    entitled_4k: bool = True
    #: Lifetime of signed download URLs (``/img/{id}`` redirects and ``includeUrls=true``).
    signed_url_ttl_seconds: float = 3600.0
    #: Origin of signed download URLs; ``None`` = the origin the request came in on.
    download_base_url: str | None = None
    #: Validate every ``/api/v1`` response against the spec and record violations.
    validate_responses: bool = False
    #: Seed for jitter, ids of seeded records and the URL-signing secret (``None`` = random).
    seed: int | None = None
    #: *(seed)* Team workspaces, id -> name (the personal workspace always exists).
    team_workspaces: dict[str, str] = field(default_factory=lambda: {"ws_emulated_team": "Emulated Team"})
    #: OAuth clients, id -> secret; ``None`` accepts any ``bloom_client_*`` id with a non-empty secret.
    oauth_clients: dict[str, str] | None = None
    #: ``expires_in`` of issued OAuth access tokens.
    oauth_token_ttl_seconds: float = 3600.0
    #: Lifetime of single-use signed-upload tokens.
    upload_token_ttl_seconds: float = 900.0
    #: Images with a side below this many pixels answer 400 ``IMAGE_TOO_SMALL`` on vectorize.
    vectorize_min_side: int = 512
    #: Largest accepted upload.
    max_upload_bytes: int = 10 * 1024 * 1024
    #: The emulated server's clock runs this far ahead of this machine's (negative: behind). It
    #: drives ``createdAt``, statuses and the ``Date`` header alike, to test clock-skew handling.
    clock_offset_seconds: float = 0.0
    #: New images (generated or uploaded) show up in filtered ``GET /images`` lists only this long
    #: after they were created (Bloom's lists may lag); lookups by ``ids`` and by id see them at once.
    list_delay_seconds: float = 0.0
    #: Loopback origins (``http://127.0.0.1:8123``) that ``POST /images/uploads`` may really fetch.
    #: Off by default: any other loopback URL answers 400 ``DOWNLOAD_FAILED`` (as Bloom, which cannot
    #: reach your machine, would), so the emulator never makes requests to other local services.
    #: Non-loopback URLs are never fetched (a synthetic image stands in).
    fetch_url_origins: list[str] = field(default_factory=list)
    #: Client networks allowed to use the admin API (``/_emulator/...``, a test tool without auth):
    #: loopback only by default, so other containers on a Docker network reach the Bloom API but
    #: cannot reconfigure the emulator or read its state.
    admin_networks: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    #: Credits charged per paid call where they differ from the provider's price list
    #: (:mod:`airflow_provider_bloom.logic.prices`), in the shape of the connection's ``prices`` extra, e.g.
    #: ``{"images.resize": {"2K": 1, "4K": 3}, "images.vectorize": 2}``. Empty: the provider's list
    #: (Bloom's published prices and the provider's assumptions).
    prices: dict[str, int | dict[str, int]] = field(default_factory=dict)

    def updated(self, patch: Mapping[str, Any]) -> EmulatorConfig:
        """A copy with ``patch`` applied; unknown fields or wrong types raise ``ValueError``."""
        hints = typing.get_type_hints(EmulatorConfig)
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(patch) - names)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        for name, value in patch.items():
            if not _matches(value, hints[name]):
                raise ValueError(f"config field {name!r}: {value!r} is not a {hints[name]}")
        changes: dict[str, Any] = {k: (float(v) if hints[k] is float else v) for k, v in patch.items()}
        new = dataclasses.replace(self, **changes)
        new.check()
        return new

    def check(self) -> None:
        if self.error_envelope not in ("flat", "nested"):
            raise ValueError("error_envelope must be 'flat' or 'nested'")
        for name in (
            "generation_seconds",
            "generation_jitter",
            "brand_ready_seconds",
            "initial_credits",
            "list_delay_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0.0 <= self.pending_fraction <= 1.0:
            raise ValueError("pending_fraction must be within 0..1")
        for net in self.admin_networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"admin_networks: {net!r} is not an IP network (e.g. 127.0.0.0/8)") from None
        try:
            parse_prices(self.prices)
        except BloomInputError as exc:
            raise ValueError(str(exc)) from None
        for origin in self.fetch_url_origins:
            if not _origin(origin).startswith(("http://", "https://")):
                raise ValueError(f"fetch_url_origins: {origin!r} is not an http(s) origin")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def public_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without secrets (what ``GET /_emulator/config`` shows): keys and client
        secrets are replaced by ``***`` (their number, and the OAuth client ids, stay visible)."""
        data = self.to_dict()
        for name in ("valid_keys", "banned_keys"):
            if data[name] is not None:
                data[name] = [SECRET_PLACEHOLDER for _ in data[name]]
        if data["oauth_clients"] is not None:
            data["oauth_clients"] = {cid: SECRET_PLACEHOLDER for cid in data["oauth_clients"]}
        return data

    def admin_allowed(self, host: str | None) -> bool:
        """Whether a client at ``host`` may use the admin API."""
        try:
            address = ipaddress.ip_address((host or "").split("%")[0])
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(net, strict=False) for net in self.admin_networks)

    def may_fetch(self, url: str) -> bool:
        """Whether ``images.upload`` may really fetch ``url`` (its origin is in ``fetch_url_origins``)."""
        return _origin(url) in {_origin(o) for o in self.fetch_url_origins}


def _origin(url: str) -> str:
    """``scheme://host:port`` of a URL, lower-cased, with the default port spelled out."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return ""
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def _matches(value: Any, hint: Any) -> bool:
    """A small runtime check of JSON values against the field annotations above."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _matches(k, key) and _matches(v, item) for k, v in value.items()
        )
    return False
