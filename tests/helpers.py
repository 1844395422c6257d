"""What the tests share, one copy each: the connection in the environment, the DAG builder and the
result of a run (the ``dag_run`` fixture in ``conftest.py`` runs it), small builders of test data and the
constants several test modules use.

Fixtures live in ``conftest.py``; this module holds plain functions and constants.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import re
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pendulum

from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.emulator.pytest_plugin import TEST_API_KEY
from airflow_provider_bloom.testing import DagResult
from tests.e2e.stack import REPO as REPO  # the repository root, one copy for all tests
from tests.e2e.stack import free_port as free_port  # a loopback port nothing listens on yet

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from airflow_provider_bloom.hooks.bloom import BloomHook

# Airflow and the hook are imported when used: conftest imports this module before the metadata DB exists.

#: The key the emulator's ``bloom_api_key`` fixture hands out (the package's pytest plugin).
API_KEY = TEST_API_KEY
#: A second key the emulator accepts (another team's credentials).
OTHER_KEY = "bloom_sk_test_another_team_00000"
START = datetime(2024, 1, 1)
NO_RETRY_WANTED = {"retries": 2, "retry_delay": timedelta(0)}
#: The fields of the slim image records that sensors and triggers hand on (XCom, trigger events).
RECORD_FIELDS = {
    "id",
    "status",
    "imageUrl",
    "width",
    "height",
    "aspectRatio",
    "actionType",
    "variantGroupId",
    "failureReason",
    "prompt",
}


def conn_json(base_url: str, key: str = API_KEY, **extra: object) -> str:
    return json.dumps(
        {
            "conn_type": "bloom",
            "host": base_url,
            "password": key,
            "extra": {"brand_session_id": DEFAULT_BRAND_ID, **extra},
        }
    )


def use_connection(monkeypatch: Any, host: str, key: str = API_KEY, **extra: object) -> BloomHook:
    """Point ``bloom_default`` at ``host`` with exactly these extras (no brand unless given); its hook."""
    from airflow_provider_bloom.hooks.bloom import BloomHook

    conn = {"conn_type": "bloom", "host": host, "password": key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", json.dumps(conn))
    return BloomHook()


def fast_settings(base_url: str, api_key: str = API_KEY, **overrides: Any) -> ClientSettings:
    """Client settings for a loopback server: three retries 10 to 50 ms apart, a 5-second timeout and
    the emulator's brand (``overrides`` change any of them)."""
    values: dict[str, Any] = {
        "brand_session_id": DEFAULT_BRAND_ID,
        "max_retries": 3,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "timeout": 5,
        **overrides,
    }
    return ClientSettings(base_url=base_url, api_key=api_key, **values)


# --------------------------------------------------------------------------- counting on the emulator


def import_string(dotted_path: str) -> Any:
    """``module.Name`` -> the object (Airflow's own helper moved between 3.1 and 3.3)."""
    module, name = dotted_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def load_module(path: Path, name: str) -> ModuleType:
    """A Python file that is not on the import path (a docs snippet), loaded as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def balance() -> float:
    """The balance of the ``bloom_default`` connection's workspace (a free GET)."""
    from airflow_provider_bloom.hooks.bloom import BloomHook

    return float(BloomHook().get_credits()["balance"])


def by_op(emulator: Any, operation: str) -> int:
    return int(emulator.requests()["by_operation"].get(operation, 0))


def list_calls(emulator) -> int:
    return by_op(emulator, "images.list")


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port from a thread; yields the server's base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- triggers


async def events_of(trigger: Any) -> list[dict]:
    return [event.payload async for event in trigger.run()]


async def until(predicate, what: str, limit: float = 10.0) -> None:
    """Wait (without blocking the loop) until ``predicate()`` holds."""
    end = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- image bytes


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR", data[:16]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def svg_size(data: bytes) -> tuple[int, int]:
    tag = re.search(rb"<svg\b[^>]*>", data)
    assert tag, data[:100]
    sizes = dict(re.findall(rb'\b(width|height)="([0-9.]+)"', tag.group(0)))
    return round(float(sizes[b"width"])), round(float(sizes[b"height"]))


# --------------------------------------------------------------------------- dag.test() helpers

_FAILURES: dict[tuple[str, str], list[str]] = {}


def _record_failure(context: Any) -> None:
    ti, exc = context["ti"], context.get("exception")
    _FAILURES.setdefault((ti.dag_id, ti.task_id), []).append(f"{type(exc).__name__}: {exc}")


def bloom_dag(name: str, **default_args: Any) -> DAG:
    """A DAG for dag.test(): one retry without delay (so a test sees whether a failure was retried)."""
    from airflow.sdk import DAG

    dag_id = re.sub(r"[^A-Za-z0-9_]+", "_", name)[:200]
    args = {
        "retries": 1,
        "retry_delay": timedelta(0),
        "on_failure_callback": _record_failure,
        "on_retry_callback": _record_failure,
        **default_args,
    }
    return DAG(dag_id, schedule=None, start_date=pendulum.datetime(2024, 1, 1), default_args=args)


def failures_of(dag_id: str) -> dict[str, list[str]]:
    """Take the failure messages ``bloom_dag``'s callbacks recorded for ``dag_id``, by task."""
    return {task: _FAILURES.pop((d, task)) for (d, task) in list(_FAILURES) if d == dag_id}


@dataclass
class Run(DagResult):
    """What a ``dag_run`` run did: :class:`DagResult` plus its log and its tasks' failure messages."""

    log: str = ""
    #: task_id -> the messages of its failed tries (DAGs made by :func:`bloom_dag` record them)
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def states(self) -> dict[str, str | None]:
        return {task: state for (task, _), (state, _) in self.tasks.items()}

    @property
    def tries(self) -> dict[str, int]:
        return {task: tries for (task, _), (_, tries) in self.tasks.items()}

    def error(self, task_id: str) -> str:
        return "\n".join(self.errors.get(task_id, []))


def completed_images(n: int = 1, prompt: str = "a lighthouse at dawn", **kwargs: Any) -> list[dict[str, Any]]:
    """Setup: generate ``n`` variants and wait for them (through the hook, over HTTP)."""
    from airflow_provider_bloom.hooks.bloom import BloomHook

    hook = BloomHook()
    ids = hook.generate_images(prompt=prompt, variant_count=n, **kwargs)["ids"]
    return hook.wait_for_images(ids, timeout=30)
