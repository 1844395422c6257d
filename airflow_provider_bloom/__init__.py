"""Apache Airflow provider for Bloom (trybloom.ai) on-brand image generation."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "auth_header": {
        "label": "Auth header",
        "schema": {"type": ["string", "null"], "enum": ["x-api-key", "bearer", None]},
        "description": "How the API key is sent: 'x-api-key' (default) or 'bearer' (Authorization: Bearer).",
    },
    "workspace_id": {
        "label": "Default workspace ID",
        "schema": {"type": ["string", "null"]},
        "description": "Used by calls that take a workspace when none is passed.",
    },
    "brand_session_id": {
        "label": "Default brand session ID",
        "schema": {"type": ["string", "null"]},
        "description": "Brand used for generations/uploads/search when none is passed.",
    },
    "timeout": {
        "label": "Request timeout (s)",
        "schema": {"type": ["integer", "null"], "minimum": 1},
        "description": "Seconds per request (long-polls get their wait time on top).",
    },
    "max_retries": {
        "label": "Max retries",
        "schema": {"type": ["integer", "null"], "minimum": 0},
        "description": "Retries of safe calls on 429, 5xx and network errors (paid POSTs: never blindly).",
    },
    "oauth_client_id": {
        "label": "OAuth client ID",
        "schema": {"type": ["string", "null"]},
        "description": "Optional: OAuth client credentials instead of an API key.",
    },
    "oauth_client_secret": {
        "label": "OAuth client secret",
        "schema": {"type": ["string", "null"], "format": "password"},
        "description": "Optional: secret of the OAuth client.",
    },
    "oauth_token_url": {
        "label": "OAuth token URL",
        "schema": {"type": ["string", "null"]},
        "description": "Defaults to Bloom's /api/auth/oauth2/token on the host's origin.",
    },
}

_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"password": "API key", "host": "Base URL"},
    "placeholders": {
        "host": "https://www.trybloom.ai/api/v1",
        "password": "bloom_sk_...",
        "auth_header": "x-api-key",
    },
}


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-bloom",
        "name": "Bloom",
        "description": "`Bloom <https://www.trybloom.ai/>`__ on-brand image generation.",
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
                    "airflow_provider_bloom.operators.brands",
                    "airflow_provider_bloom.operators.download",
                    "airflow_provider_bloom.operators.credits",
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
        "extra-links": ["airflow_provider_bloom.links.BloomImageLink"],
    }
