"""Run a DAG defined inside a test with ``dag.test()`` and read back what happened.

On Airflow 3.3, ``dag.test()`` only runs DAGs whose serialized version is in the metadata
database (``Cannot create DagRun ... because the dag is not serialized``), and the database
must have been migrated. :func:`run_dag` takes care of both: it migrates the configured
metadata database once per process (``airflow db migrate``, idempotent), writes the in-memory
DAG there, runs it, and returns every task's state, try number and XComs.

The pytest plugin exposes it as the ``bloom_dag_runner`` fixture::

    def test_my_dag(bloom_emulator, bloom_connection, bloom_dag_runner):
        with DAG("my_dag", schedule=None) as dag:
            ...
        result = bloom_dag_runner(dag)
        assert result.state == "success" and result.xcom("generate")

Point ``AIRFLOW_HOME`` at a throwaway directory (e.g. ``AIRFLOW_HOME=$(mktemp -d) pytest``)
unless you want your own Airflow's metadata database used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

_migrated = False
_migrate_lock = threading.Lock()


@dataclass
class DagResult:
    """What a ``dag.test()`` run did."""

    state: str
    run_id: str
    dag_id: str
    #: (task_id, map_index) -> (state, try_number)
    tasks: dict[tuple[str, int], tuple[str | None, int]]
    _xcoms: dict[tuple[str, int, str], Any]

    def state_of(self, task_id: str, map_index: int = -1) -> str | None:
        return self.tasks[(task_id, map_index)][0]

    def tries_of(self, task_id: str, map_index: int = -1) -> int:
        return self.tasks[(task_id, map_index)][1]

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        return self._xcoms.get((task_id, map_index, key))

    def xcoms(self) -> dict[tuple[str, int, str], Any]:
        return dict(self._xcoms)


def ensure_metadata_db() -> None:
    """Migrate the configured metadata database once per process (``airflow db migrate``)."""
    global _migrated
    with _migrate_lock:
        if _migrated:
            return
        result = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"`airflow db migrate` failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        _migrated = True


def mark_metadata_db_migrated() -> None:
    """Tell :func:`run_dag` the database is already migrated (e.g. by your own session setup)."""
    global _migrated
    _migrated = True


def register_dag(dag: Any) -> None:
    """Write the in-memory ``dag`` into the metadata database, as the DAG processor would."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
        session.commit()
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def run_dag(dag: Any, **kwargs: Any) -> DagResult:
    """``dag.test(**kwargs)`` for a DAG defined anywhere; returns states, tries and XComs."""
    ensure_metadata_db()
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    register_dag(dag)
    dr = dag.test(**kwargs)
    with create_session() as session:
        tis = dr.get_task_instances(session=session)
        tasks = {(ti.task_id, ti.map_index): (ti.state, ti.try_number) for ti in tis}
        rows = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id).all()
        xcoms = {(x.task_id, x.map_index, x.key): XComModel.deserialize_value(x) for x in rows}
        return DagResult(str(dr.state), dr.run_id, dr.dag_id, tasks, xcoms)


__all__ = ["DagResult", "ensure_metadata_db", "mark_metadata_db_migrated", "register_dag", "run_dag"]
