"""pytest fixtures for testing against the Bloom emulator (registered as the ``bloom_emulator`` plugin).

* ``bloom_emulator``: an :class:`EmulatorServer` on a free loopback port, shared by the
  session but reset before each test to the fast test config (images finish in 50 ms,
  brands in 50 ms, no rate limit, response validation on). After the test it fails the
  test if any response broke Bloom's spec.
* ``bloom_emulator_session``: the shared server itself (no reset, no checks).
* ``bloom_api_key``: a key the emulator accepts.
* ``bloom_connection``: the ``bloom_default`` Airflow connection pointed at the emulator (an
  ``AIRFLOW_CONN_BLOOM_DEFAULT`` variable for the test, with the emulator's ready brand as default);
  yields the emulator.
* ``bloom_dag_runner``: :func:`airflow_provider_bloom.testing.run_dag`: runs a DAG defined in the test
  with ``dag.test()`` (migrating the metadata DB once and serializing the DAG first, as Airflow 3.3
  requires) and returns a :class:`~airflow_provider_bloom.testing.DagResult` (states, tries, XComs).

Example (``AIRFLOW_HOME=$(mktemp -d) pytest``)::

    def test_my_dag(bloom_emulator, bloom_connection, bloom_dag_runner):
        with DAG("my_dag", schedule=None) as dag:
            BloomGenerateImageOperator(task_id="generate", prompt="a red bicycle")
        result = bloom_dag_runner(dag)
        assert result.state == "success"
        assert bloom_emulator.requests()["paid_posts"] == 1
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_bloom.emulator.config import EmulatorConfig

if TYPE_CHECKING:
    from airflow_provider_bloom.emulator.server import EmulatorServer
    from airflow_provider_bloom.testing import DagResult

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


@pytest.fixture
def bloom_connection(
    bloom_emulator: EmulatorServer, bloom_api_key: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatorServer]:
    """``bloom_default`` pointing at the emulator for this test; yields the emulator."""
    from airflow_provider_bloom.emulator.config import DEFAULT_BRAND_ID

    conn = {
        "conn_type": "bloom",
        "host": bloom_emulator.base_url,
        "password": bloom_api_key,
        "extra": {"brand_session_id": DEFAULT_BRAND_ID},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", json.dumps(conn))
    yield bloom_emulator


@pytest.fixture
def bloom_dag_runner() -> Callable[..., DagResult]:
    """Run an in-test DAG with ``dag.test(**kwargs)``; returns states, tries and XComs."""
    from airflow_provider_bloom.testing import run_dag

    return run_dag
