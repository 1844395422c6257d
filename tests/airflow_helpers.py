"""The DAG runner the package ships for users' tests (:mod:`airflow_provider_bloom.testing`), used here too.

The session's ``conftest`` migrates the metadata DB once at start, so the runner is told not to again.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_bloom.testing import DagResult, mark_metadata_db_migrated, register_dag, run_dag

mark_metadata_db_migrated()

__all__ = ["DagResult", "import_string", "register_dag", "run_dag"]


def import_string(dotted_path: str) -> Any:
    """``module.Name`` -> the object (Airflow's own helper moved between 3.1 and 3.3)."""
    import importlib

    module, name = dotted_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)
