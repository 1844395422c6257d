"""Test setup: a throwaway AIRFLOW_HOME with a SQLite metadata DB, and a Bloom connection to the emulator.

The environment is set before Airflow is imported anywhere in the test session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID  # noqa: E402

API_KEY = "bloom_sk_test_0123456789abcdef"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Create the metadata DB once (dag.test() needs it)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        env=os.environ.copy(),
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


def conn_json(base_url: str, key: str = API_KEY, **extra: object) -> str:
    return json.dumps(
        {
            "conn_type": "bloom",
            "host": base_url,
            "password": key,
            "extra": {"brand_session_id": DEFAULT_BRAND_ID, **extra},
        }
    )


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
    from airflow_provider_bloom.triggers.hub import forget_connections

    forget_connections()
    yield
    forget_connections()
