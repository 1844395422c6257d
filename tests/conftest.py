"""Test setup: a throwaway AIRFLOW_HOME with a SQLite metadata DB, and a Bloom connection to the emulator.

The environment is set before Airflow is imported anywhere in the test session.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Idempotent: this module may be imported again under another name (``tests.conftest``).
_HOME = Path(
    os.environ.setdefault("BLOOM_TESTS_AIRFLOW_HOME", tempfile.mkdtemp(prefix="bloom-airflow-home-"))
)
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags_examples")
os.environ.setdefault("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
os.environ.pop("AIRFLOW_CONN_BLOOM_DEFAULT", None)

import pytest  # noqa: E402

from airflow_provider_bloom.testing import DagResult, ensure_metadata_db, run_dag  # noqa: E402
from tests.helpers import API_KEY, Run, conn_json, failures_of  # noqa: E402
from tests.hostile_server import HostileServer, hostile_server  # noqa: E402

__all__ = ["API_KEY", "conn_json"]  # re-exported for `from conftest import ...`; defined in tests/helpers.py


def pytest_sessionstart(session: pytest.Session) -> None:
    """Create the metadata DB once (dag.test() needs it)."""
    ensure_metadata_db()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


#: Left out of `make test-fast` (marked `slow`; `make test` runs them): each took 6 s or more in one of two
#: runs of tests/unit and tests/emulator on the shared 2-core machine (`--durations`), or starts Airflow's
#: CLI processes.
SLOW_TESTS = {
    "tests/unit/test_init.py::test_airflow_cli_lists_the_provider_and_tests_the_connection",
    "tests/unit/sensors/test_images.py::test_soft_fail_turns_the_deadline_into_a_skip",
    "tests/unit/sensors/test_images.py::test_a_429_storm_in_the_middle_of_waiting_is_survived",
    "tests/unit/sensors/test_images.py::test_mapped_generation_over_twenty_prompts_sensed_by_one_sensor",
    "tests/unit/sensors/test_images.py::test_poke_sends_one_list_call_per_chunk_of_fifty_ids",
    "tests/unit/test_client_imports.py::test_the_hook_and_the_cheap_client_modules_load_no_http_stack_and_no_spec",
    "tests/unit/triggers/test_images.py::test_a_429_storm_beyond_the_clients_retries_is_outlasted",
    "tests/unit/operators/test_batch.py::test_bad_rows_are_reported_together_and_nothing_is_sent",
    "tests/unit/operators/test_batch.py::test_a_retry_resumes_with_the_rows_not_yet_submitted",
    "tests/emulator/test_emulator_faults.py::test_the_fixture_fails_a_test_that_received_a_violating_response",
    "tests/unit/triggers/test_hub.py::test_a_permanent_error_on_a_shared_sweep_is_asked_again_per_trigger",
    "tests/unit/triggers/test_hub.py::test_a_429_slows_the_whole_hub_once_and_nothing_fails",
    "tests/emulator/test_emulator_waits.py::test_many_waits_share_the_loop_and_wake_fast",
    "tests/emulator/test_emulator_cli.py::test_cli_serves_logs_and_stops_with_waits_in_flight",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("[", 1)[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def bloom_conn(bloom_emulator, monkeypatch):
    """`bloom_default` pointing at the emulator (JSON connection in the environment); yields the emulator."""
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_emulator.base_url))
    yield bloom_emulator


@pytest.fixture
def airflow_home() -> Path:
    return _HOME


@pytest.fixture(autouse=True)
def _fresh_connection_lookups():
    """Tests change connections between them: the triggers' short lookup cache must not carry over."""
    from airflow_provider_bloom.triggers.connections import forget_connections

    forget_connections()
    yield
    forget_connections()


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    """A scripted loopback server (tests/hostile_server.py), one per test module."""
    yield from hostile_server()


# --------------------------------------------------------------------------- dag_run


def _rendered_fields(result: DagResult) -> str:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(RenderedTaskInstanceFields).filter_by(dag_id=result.dag_id, run_id=result.run_id)
        return repr([row.rendered_fields for row in rows])


@pytest.fixture(name="dag_run")
def dag_run_fixture(caplog, capfd, bloom_api_key) -> Iterator[Callable[..., Run]]:
    """``dag_run(dag, **test_kwargs)`` -> :class:`~tests.helpers.Run`: runs a DAG with ``dag.test()``
    (:func:`airflow_provider_bloom.testing.run_dag`), captures every log line (caplog at DEBUG for all
    loggers, plus the task output dag.test writes to stdout/stderr) and the failure messages of a
    :func:`~tests.helpers.bloom_dag`; after the test, the API key must be absent from logs, failure
    messages, XComs and rendered template fields of every run."""
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def run(dag: Any, **test_kwargs: Any) -> Run:
        failures_of(dag.dag_id)  # left by an earlier run of the same DAG id
        start = len(caplog.records)
        result = run_dag(dag, **test_kwargs)
        errors = failures_of(dag.dag_id)
        out, err = capfd.readouterr()
        log = out + err + "\n".join(_record_text(r) for r in caplog.records[start:])
        seen.extend([log, repr(errors), repr(result.xcoms()), _rendered_fields(result)])
        return Run(**vars(result), log=log, errors=errors)

    yield run
    out, err = capfd.readouterr()
    seen.extend([out, err, "\n".join(_record_text(r) for r in caplog.records)])
    leaks = [text for text in seen if bloom_api_key in text]
    assert not leaks, "the API key leaked into a log line, a failure message, an XCom or a rendered field"


def _record_text(record: logging.LogRecord) -> str:
    text = f"{record.name} {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        text += f" {record.exc_info[1]!r}"
    return text
