"""An offline, stateful Bloom for tests, benchmarks, the demo and users' own DAG tests.

Start it with ``python -m airflow_provider_bloom.emulator --port 8787``, in-process with
:class:`EmulatorServer`, or in pytest with the ``bloom_emulator`` fixture (this package's
pytest plugin). Drive it with :class:`EmulatorClient` (reset, config, credits, faults, counters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_bloom.emulator.config import (
    ACCOUNT_EMAIL,
    BRAND_FAIL_MARKER,
    BRAND_LOGO_REQUIRED_MARKER,
    CONTENT_SAFETY_MARKER,
    DEFAULT_BRAND_ID,
    DEFAULT_BRAND_NAME,
    DOWNLOAD_FAILS_MARKER,
    INVALID_LOGO_MARKER,
    RATE_LIMITED_MARKER,
    SEEDED_IMAGE_IDS,
    EmulatorConfig,
)
from airflow_provider_bloom.emulator.observe import key_fingerprint

if TYPE_CHECKING:
    from airflow_provider_bloom.emulator.app import create_app
    from airflow_provider_bloom.emulator.client import EmulatorAdminError, EmulatorClient
    from airflow_provider_bloom.emulator.server import EmulatorServer, serve

# The web stack is imported on first use, so importing the markers (or the pytest plugin) stays cheap.
_LAZY = {
    "create_app": "airflow_provider_bloom.emulator.app",
    "EmulatorClient": "airflow_provider_bloom.emulator.client",
    "EmulatorAdminError": "airflow_provider_bloom.emulator.client",
    "EmulatorServer": "airflow_provider_bloom.emulator.server",
    "serve": "airflow_provider_bloom.emulator.server",
}

__all__ = [
    "ACCOUNT_EMAIL",
    "BRAND_FAIL_MARKER",
    "BRAND_LOGO_REQUIRED_MARKER",
    "CONTENT_SAFETY_MARKER",
    "DEFAULT_BRAND_ID",
    "DEFAULT_BRAND_NAME",
    "DOWNLOAD_FAILS_MARKER",
    "INVALID_LOGO_MARKER",
    "RATE_LIMITED_MARKER",
    "SEEDED_IMAGE_IDS",
    "EmulatorAdminError",
    "EmulatorClient",
    "EmulatorConfig",
    "EmulatorServer",
    "create_app",
    "key_fingerprint",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
