"""Where tasks keep files: any location Airflow's object storage reaches (a local path, ``s3://``, ``gs://``...)."""

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
    """Whether ``path`` is on this machine's file system."""
    return getattr(path, "protocol", "file") in ("file", "local", "")
