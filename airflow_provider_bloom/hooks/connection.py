"""The ``bloom`` Airflow connection: its form (read by Airflow from the provider info, and by the hook on
Airflow 3.1), and how a connection becomes the client's
:class:`~airflow_provider_bloom.client.settings.ClientSettings`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.client.spec import DEFAULT_BASE_URL
from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.logic.pacing import DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_WAIT_REQUESTS_PER_MINUTE
from airflow_provider_bloom.logic.prices import parse_prices

# Extras of the `bloom` connection, in the declarative shape Airflow 3.2+ reads from the provider info
# (``conn-fields``: a label, a JSON schema per field, a help text). The schema's ``default`` fills the form,
# so numbers are saved as numbers and the auth header starts on ``x-api-key``. Airflow 3.1 builds the form
# from ``BloomHook.get_connection_form_widgets()`` instead, which derives its fields from this table.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    # A Base URL without a path gets this path. Unset (null, what the form saves for an empty field) is
    # Bloom's /api/v1, so the root is spelled "/" (or "" in JSON and URI connections).
    "api_path": {
        "label": "API path",
        "schema": {"type": ["string", "null"], "default": "/api/v1"},
        "description": "Path added to a Base URL that has none (default /api/v1, Bloom's). Set / for a "
        "server that serves Bloom's API at its root: a gateway, or a spec mock such as Prism.",
    },
    # Not named `auth_header`: Airflow treats every extra whose name contains that as a secret and shows
    # (and, in a new connection, saves) its value as "***". The hook still reads `auth_header`.
    "auth_scheme": {
        "label": "Auth header",
        "schema": {"type": "string", "enum": ["x-api-key", "bearer"], "default": "x-api-key"},
        "description": "How the API key is sent: x-api-key (default) or bearer "
        "(Authorization: Bearer <key>).",
    },
    "brand_session_id": {
        "label": "Default brand session ID",
        "schema": {"type": ["string", "null"]},
        "description": "Brand used by generations, edits, uploads and search when a task passes none "
        "(a brand UUID; empty: none).",
    },
    "workspace_id": {
        "label": "Default workspace ID",
        "schema": {"type": ["string", "null"]},
        "description": "Team workspace for calls that take one (credits, brands, lists) when a task "
        "passes none (empty: your personal workspace).",
    },
    "timeout": {
        "label": "Request timeout (s)",
        "schema": {"type": ["integer", "null"], "minimum": 1, "default": 60},
        "description": "Seconds per request (default 60). Long-polls get their wait time on top.",
    },
    "max_retries": {
        "label": "Max retries",
        "schema": {"type": ["integer", "null"], "minimum": 0, "default": 5},
        "description": "Retries of safe calls on 429, 5xx and network errors (default 5). "
        "Paid POSTs are retried only when they provably never reached Bloom.",
    },
    "wait_requests_per_minute": {
        "label": "Wait requests per minute",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 60000, "default": 60},
        "description": "Requests per minute the triggerer's wait hub may spend on this key (default 60). "
        "Bloom documents 120 per key: keep this plus 'requests per minute' within your key's real "
        "limit, and lower it when several triggerers share a key.",
    },
    "requests_per_minute": {
        "label": "Requests per minute (one task)",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 60000, "default": 60},
        "description": "Requests per minute one task may send in a loop: batches, post-processing over "
        "many images, uploads, deletions (default 60). Bloom documents 120 per key; if your plan "
        "allows more, set your key's real limit minus the wait budget.",
    },
    "prices": {
        "label": "Credit prices (JSON)",
        "schema": {"type": ["string", "null"]},
        "description": "Optional: credits per paid call where they differ from the provider's price list, "
        'as JSON, e.g. {"images.resize": {"2K": 1, "4K": 2}, "images.removeBackground": 1}. '
        "Bloom publishes no price for resize, remove-background and vectorize; the defaults are assumptions.",
    },
    "oauth_client_id": {
        "label": "OAuth client ID",
        "schema": {"type": ["string", "null"]},
        "description": "Optional: OAuth client credentials instead of an API key (leave the API key empty).",
    },
    "oauth_client_secret": {
        "label": "OAuth client secret",
        "schema": {"type": ["string", "null"], "format": "password"},
        "description": "Secret of the OAuth client (required with the client ID).",
    },
    "oauth_token_url": {
        "label": "OAuth token URL",
        "schema": {"type": ["string", "null"]},
        "description": "Empty: /api/auth/oauth2/token on the base URL's origin.",
    },
}

# Standard fields of the form: hidden, relabelled, with placeholders. Provider info spells the keys in
# kebab-case (``ui-field-behaviour``); BloomHook.get_ui_field_behaviour() returns the snake_case shape
# that Airflow validates against its customized_form_field_behaviours.schema.json.
_HIDDEN_FIELDS = ["schema", "port", "login"]
_RELABELING = {"host": "Base URL", "password": "API key"}
_PLACEHOLDERS = {"host": "https://www.trybloom.ai/api/v1", "password": "bloom_sk_..."}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": _HIDDEN_FIELDS,
    "relabeling": _RELABELING,
    "placeholders": _PLACEHOLDERS,
}


def ui_field_behaviour() -> dict[str, Any]:
    """The form behaviour in the shape ``BaseHook.get_ui_field_behaviour()`` returns (snake_case)."""
    return {
        "hidden_fields": list(_HIDDEN_FIELDS),
        "relabeling": dict(_RELABELING),
        "placeholders": dict(_PLACEHOLDERS),
    }


def _extras(conn: Any) -> dict[str, Any]:
    extra = getattr(conn, "extra_dejson", None)
    if extra is None:
        raw = getattr(conn, "extra", None) or "{}"
        extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return dict(extra or {})


def _number(extras: Mapping[str, Any], name: str, cast: type, default: Any) -> Any:
    value = extras.get(name)
    if value in (None, ""):
        return default
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise BloomInputError(name, f"connection extra must be a number; got {value!r}") from None


API_PATH = "/api/v1"  # Bloom's API under its origin
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def base_url_from_connection(conn: Any, extras: Mapping[str, Any]) -> str:
    """Bloom's base URL from the connection's host, typed the way people type it.

    - empty: ``https://www.trybloom.ai/api/v1``;
    - a URL without a path (``https://www.trybloom.ai``, ``http://127.0.0.1:8787``) gets the extra
      ``api_path``: Bloom's ``/api/v1`` by default, nothing when it is ``/`` or ``""`` (a gateway, or a spec
      mock such as Stoplight Prism, that serves Bloom's API at its root); a URL with a path is used as typed;
    - a host without a scheme (``www.trybloom.ai``, ``127.0.0.1:8787``) gets ``https://``, or ``http://``
      for a loopback host (a local emulator), unless the extra ``scheme`` says otherwise. The port and
      ``schema`` (the path) of a URI connection (``bloom://:key@host:8787/api%2Fv1``) are kept.
    """
    api_path = api_path_from_extras(extras)  # checked even when the host has its own path
    host = (getattr(conn, "host", None) or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        # A URI connection (bloom://:key@www.trybloom.ai/api%2Fv1?scheme=https) splits the base URL
        # into host, port and `schema` (the path).
        name = host.split("/", 1)[0]
        if name.startswith("["):  # [::1]:8787
            hostname = name.split("]", 1)[0] + "]"
        else:
            hostname = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
        default_scheme = "http" if hostname.lower() in _LOOPBACK_HOSTS else "https"
        scheme = str(extras.get("scheme") or default_scheme).lower()
        port = getattr(conn, "port", None)
        path = (getattr(conn, "schema", None) or "").strip("/")
        has_port = name.rsplit("]", 1)[-1].count(":") == 1 if name.startswith("[") else ":" in name
        host = f"{scheme}://{host}" + (f":{port}" if port and not has_port else "")
        host += f"/{path}" if path else ""
    host = host.rstrip("/")
    parsed = urlparse(host)
    if parsed.scheme in {"http", "https"} and parsed.netloc and not parsed.path:
        host += api_path
    return host


def api_path_from_extras(extras: Mapping[str, Any]) -> str:
    """The extra ``api_path`` normalised: ``/api/v1`` when unset (``None``), ``""`` for the root."""
    value = extras.get("api_path")
    if value is None:  # unset; Airflow's form saves a field left empty as null
        return API_PATH
    path = str(value).strip()
    if (
        not isinstance(value, str)
        or any(c in path for c in "?#\\ ")
        or "://" in path
        or any(ord(c) < 0x21 or ord(c) > 0x7E for c in path)
    ):
        raise BloomInputError(
            "api_path",
            "must be the URL path of Bloom's API on the base URL, like /api/v1 (Bloom's, the default), or / "
            f"for a server that serves Bloom's API at its root (a gateway, a spec mock); got {value!r}",
        )
    path = path.strip("/")
    return f"/{path}" if path else ""


def settings_from_connection(conn: Any, extras: Mapping[str, Any] | None = None) -> ClientSettings:
    """Build client settings from an Airflow Connection (UI, URI, JSON or a secrets backend)."""
    extras = dict(extras) if extras is not None else _extras(conn)
    host = base_url_from_connection(conn, extras)
    # `auth_scheme` is the form's field; `auth_header` is its older name, still read (URI/JSON
    # connections). Airflow masks any extra whose name contains "auth_header", so the form can't use it.
    scheme_field = "auth_scheme" if extras.get("auth_scheme") not in (None, "") else "auth_header"
    auth_header = str(extras.get(scheme_field) or "x-api-key").strip().lower()
    if auth_header in {"authorization", "bearer"}:
        auth_header = "bearer"
    if auth_header not in {"x-api-key", "bearer"}:
        raise BloomInputError(scheme_field, f"must be 'x-api-key' or 'bearer'; got {auth_header!r}")
    return ClientSettings(
        base_url=host,
        api_key=getattr(conn, "password", None) or extras.get("api_key") or None,
        auth_header=auth_header,
        oauth_client_id=extras.get("oauth_client_id") or None,
        oauth_client_secret=extras.get("oauth_client_secret") or None,
        oauth_token_url=extras.get("oauth_token_url") or None,
        workspace_id=extras.get("workspace_id") or None,
        brand_session_id=extras.get("brand_session_id") or None,
        timeout=_number(extras, "timeout", float, 60.0),
        max_retries=_number(extras, "max_retries", int, 5),
        wait_requests_per_minute=_number(
            extras, "wait_requests_per_minute", int, DEFAULT_WAIT_REQUESTS_PER_MINUTE
        ),
        requests_per_minute=_number(extras, "requests_per_minute", int, DEFAULT_REQUESTS_PER_MINUTE),
        prices=parse_prices(extras.get("prices")),
    )
