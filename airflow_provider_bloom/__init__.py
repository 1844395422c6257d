"""Apache Airflow provider for Bloom (trybloom.ai) on-brand image generation."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    from airflow_provider_bloom.hooks.connection import CONN_FIELDS, UI_FIELD_BEHAVIOUR

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
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
        "extra-links": [
            "airflow_provider_bloom.links.BloomImageLink",
            *(f"airflow_provider_bloom.links.BloomImageLink{n}" for n in range(2, 11)),
            "airflow_provider_bloom.links.BloomManifestLink",
        ],
    }
