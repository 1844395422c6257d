"""The DAG runner the package ships for users' tests (:mod:`airflow_provider_bloom.testing`), used here too.

The session's ``conftest`` migrates the metadata DB once at start, so the runner is told not to again.
"""

from __future__ import annotations

from airflow_provider_bloom.testing import DagResult, mark_metadata_db_migrated, register_dag, run_dag

mark_metadata_db_migrated()

__all__ = ["DagResult", "register_dag", "run_dag"]
