"""Where a batch's files live: its manifest, and its journal (written by
:mod:`airflow_provider_bloom.logic.batch.journal` to either store).

* :func:`default_manifest_path`: the manifest's place when ``output_path`` is not given;
* :func:`batch_identity`: the batch's name in its journal's keys (its requests, the clear round);
* :class:`StateStoreSegments`: Airflow's ``task_state_store`` (3.3+), one key per segment;
* :class:`PathSegments`: files in a hidden folder beside the manifest, in the same storage (3.1/3.2);
* :func:`journal_store` chooses between them for one batch, :func:`describe_store` names the choice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_bloom.logic.batch.journal import SegmentStore
from airflow_provider_bloom.tasks.ledger import call_identity
from airflow_provider_bloom.tasks.storage import is_local, storage_path

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_bloom.client.core import PreparedCall

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._=-]+")


def default_manifest_path(context: Context) -> Any:
    """``$AIRFLOW_HOME/bloom-batches/<dag>/<run>/<task>.jsonl`` (``<task>_<map index>`` when mapped)."""
    ti = context["ti"]
    home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
    name = ti.task_id + (f"_{ti.map_index}" if getattr(ti, "map_index", -1) not in (-1, None) else "")
    parts = [_UNSAFE_NAME.sub("_", str(p)) for p in (ti.dag_id, ti.run_id, name)]
    return storage_path(home.joinpath("bloom-batches", *parts[:2], parts[2] + ".jsonl"))


def batch_identity(operation: str, calls: Sequence[PreparedCall], round_: int | None) -> str:
    """The batch's name: a digest of its operation and requests, and of the clear ``round_`` if any."""
    digest = hashlib.sha256(operation.encode())
    for call in calls:
        digest.update(json.dumps(call_identity(call), sort_keys=True, default=str).encode())
    if round_:
        digest.update(f"round{round_}".encode())
    return digest.hexdigest()[:16]


class StateStoreSegments:
    """Journal segments in Airflow's ``task_state_store`` (3.3+), one key each: kept across retries and
    deferrals of the task instance, in Airflow's own database, whichever machine runs the next try."""

    def __init__(self, store: Any, prefix: str) -> None:
        self.store, self.prefix = store, prefix

    def get(self, name: str) -> list[dict[str, Any]] | None:
        value = self.store.get(f"{self.prefix}.{name}")
        return value if isinstance(value, list) else None

    def put(self, name: str, events: list[dict[str, Any]]) -> None:
        self.store.set(f"{self.prefix}.{name}", events)


class PathSegments:
    """Journal segments as files in a folder of any object storage (``file://``, ``s3://``...).

    A local file is written under a temporary name and renamed, so a killed writer never leaves half a
    segment; object stores write an object whole.
    """

    def __init__(self, folder: Any) -> None:
        self.folder = folder
        self.local = Path(folder.path) if is_local(folder) else None
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)

    def get(self, name: str) -> list[dict[str, Any]] | None:
        if self.local is not None:
            file = self.local / f"{name}.json"
            return json.loads(file.read_text()) if file.exists() else None
        path = self.folder / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, name: str, events: list[dict[str, Any]]) -> None:
        text = json.dumps(events, separators=(",", ":"), default=str)
        if self.local is not None:
            tmp = self.local / f".{name}.{os.getpid()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.local / f"{name}.json")
            return
        (self.folder / f"{name}.json").write_text(text)


def journal_store(context: Any, manifest: Any, identity: str) -> SegmentStore:
    """Where this batch's journal lives.

    * Airflow 3.3+: ``task_state_store`` (Airflow's database; kept across retries and deferrals, seen by
      every machine).
    * Airflow 3.1/3.2 have no such store: a hidden folder beside the manifest, in the same storage
      (``<output folder>/.<manifest name>.journal/<batch>/``). The manifest's storage is the one place
      the user has already chosen to keep this batch's results, and downstream tasks must read it
      anyway: with several worker machines it must be shared (object storage, or a shared mount),
      and then so is the journal.
    """
    store = context.get("task_state_store") if hasattr(context, "get") else None
    if store is not None:
        return StateStoreSegments(store, f"bloom.batch.{identity}")
    return PathSegments(manifest.parent / f".{manifest.name}.journal" / identity)


def describe_store(store: SegmentStore) -> str:
    """Name ``store`` for the log: its keys or its folder."""
    if isinstance(store, StateStoreSegments):
        return f"task_state_store ({store.prefix}.*)"
    if isinstance(store, PathSegments):
        return str(store.folder)
    return type(store).__name__


__all__ = [
    "PathSegments",
    "StateStoreSegments",
    "batch_identity",
    "default_manifest_path",
    "describe_store",
    "journal_store",
]
