"""Fixtures for the emulator tests (``bloom_emulator`` itself comes from the package's pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_bloom.emulator.server import EmulatorServer


@pytest.fixture
def api(bloom_emulator: EmulatorServer, bloom_api_key: str) -> Iterator[httpx.Client]:
    """An httpx client on the emulator's ``/api/v1`` with a valid key."""
    with httpx.Client(
        base_url=bloom_emulator.base_url, headers={"x-api-key": bloom_api_key}, timeout=30, trust_env=False
    ) as client:
        yield client
