"""Where a task reads and writes its files: a path or a URL as an ``ObjectStoragePath``.

Shared by the operators (batch manifests, journals, downloads, reviews) and by the lineage module that
names those files as OpenLineage datasets. Airflow's ``ObjectStoragePath`` is imported when called,
not at DAG-parse time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def storage_path(location: Any) -> Any:
    """An ``ObjectStoragePath`` for a path or URL (a plain path is a local file)."""
    from airflow.sdk import ObjectStoragePath

    if isinstance(location, ObjectStoragePath):
        return location
    text = str(location)
    return ObjectStoragePath(text if "://" in text else Path(text).expanduser().resolve().as_uri())


def is_local(path: Any) -> bool:
    """Whether ``path`` is on this machine's file system (an ``ObjectStoragePath`` of ``file``)."""
    return getattr(path, "protocol", "file") in ("file", "local", "")


__all__ = ["is_local", "storage_path"]
