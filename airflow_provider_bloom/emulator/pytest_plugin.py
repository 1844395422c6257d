"""pytest fixtures for testing against the Bloom emulator (registered as the ``bloom_emulator`` plugin).

* ``bloom_emulator``: an :class:`EmulatorServer` on a free loopback port, shared by the
  session but reset before each test to the fast test config (images finish in 50 ms,
  brands in 50 ms, no rate limit, response validation on). After the test it fails the
  test if any response broke Bloom's spec.
* ``bloom_emulator_session``: the shared server itself (no reset, no checks).
* ``bloom_api_key``: a key the emulator accepts.

Example::

    def test_my_dag(bloom_emulator, bloom_api_key):
        hook = BloomHook(base_url=bloom_emulator.base_url, api_key=bloom_api_key)
        ...
        assert bloom_emulator.requests()["paid_posts"] == 1
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_bloom.emulator.config import EmulatorConfig

if TYPE_CHECKING:
    from airflow_provider_bloom.emulator.server import EmulatorServer

TEST_API_KEY = "bloom_sk_test_0123456789abcdef"


def emulator_test_config(**overrides: Any) -> EmulatorConfig:
    """The config the ``bloom_emulator`` fixture restores before every test."""
    fields: dict[str, Any] = {
        "generation_seconds": 0.05,
        "brand_ready_seconds": 0.05,
        "rate_limit_per_minute": None,
        "validate_responses": True,
        **overrides,
    }
    return EmulatorConfig(**fields)


@pytest.fixture(scope="session")
def bloom_emulator_session() -> Iterator[EmulatorServer]:
    from airflow_provider_bloom.emulator.server import EmulatorServer

    server = EmulatorServer(emulator_test_config())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bloom_emulator(bloom_emulator_session: EmulatorServer) -> Iterator[EmulatorServer]:
    server = bloom_emulator_session
    server.configure(**dataclasses.asdict(emulator_test_config()))
    server.reset()
    yield server
    violations = server.violations()
    if violations:
        listed = "\n".join(
            f"  {v['operation']} {v['method']} {v['path']} -> {v['status']}: {v['problem']}"
            for v in violations
        )
        pytest.fail(f"the Bloom emulator sent {len(violations)} response(s) that break the spec:\n{listed}")


@pytest.fixture
def bloom_api_key() -> str:
    return TEST_API_KEY
