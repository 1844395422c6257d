"""Run DAGs defined inside test modules with ``dag.test()`` and read back what happened.

``dag.test()`` only runs DAGs whose serialized version is in the metadata DB (it syncs the DAG folder from
disk). ``run_dag`` writes the in-memory DAG there first, so tests can build DAGs inline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class DagResult:
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


def register_dag(dag: Any) -> None:
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


def import_string(dotted_path: str) -> Any:
    """``module.Name`` -> the object (Airflow's own helper moved between 3.1 and 3.3)."""
    import importlib

    module, name = dotted_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)
