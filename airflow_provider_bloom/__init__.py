"""Apache Airflow provider for Bloom (trybloom.ai) on-brand image generation."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Extras of the `bloom` connection, in the declarative shape Airflow 3.2+ reads from the provider info
# (``conn-fields``: a label, a JSON schema per field, a help text). The schema's ``default`` fills the form,
# so numbers are saved as numbers and the auth header starts on ``x-api-key``. Airflow 3.1 builds the form
# from ``BloomHook.get_connection_form_widgets()`` instead, which derives its fields from this table.
_CONN_FIELDS: dict[str, dict[str, Any]] = {
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

_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
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


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-bloom",
        "name": "Bloom",
        # Plain text: the providers page strips the characters of RST markup (backquotes, underscores,
        # angle brackets), so a link in RST would read "Bloom https://...on-brand".
        "description": "Bloom (trybloom.ai) on-brand image generation: generate images, wait for them "
        "in the triggerer, post-process and download them.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Bloom",
                "external-doc-url": "https://www.trybloom.ai/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Bloom", "python-modules": ["airflow_provider_bloom.hooks.bloom"]}],
        "operators": [
            {
                "integration-name": "Bloom",
                "python-modules": [
                    "airflow_provider_bloom.operators.images",
                    "airflow_provider_bloom.operators.batch",
                    "airflow_provider_bloom.operators.library",
                    "airflow_provider_bloom.operators.brands",
                    "airflow_provider_bloom.operators.download",
                    "airflow_provider_bloom.operators.manifest",
                    "airflow_provider_bloom.operators.credits",
                    "airflow_provider_bloom.operators.review",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Bloom",
                "python-modules": [
                    "airflow_provider_bloom.sensors.images",
                    "airflow_provider_bloom.sensors.brands",
                    "airflow_provider_bloom.sensors.credits",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "Bloom",
                "python-modules": [
                    "airflow_provider_bloom.triggers.images",
                    "airflow_provider_bloom.triggers.brands",
                ],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_bloom.hooks.bloom.BloomHook",
                "hook-name": "Bloom",
                "connection-type": "bloom",
                "ui-field-behaviour": _UI_FIELD_BEHAVIOUR,
                "conn-fields": _CONN_FIELDS,
            }
        ],
        "extra-links": [
            "airflow_provider_bloom.links.BloomImageLink",
            *(f"airflow_provider_bloom.links.BloomImageLink{n}" for n in range(2, 11)),
            "airflow_provider_bloom.links.BloomManifestLink",
        ],
    }
