"""What the tests share, one copy each: the connection in the environment, the dag.test() helpers,
small builders of test data and the constants several test modules use.

Fixtures live in ``conftest.py``; this module holds plain functions and constants.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pendulum

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.emulator.pytest_plugin import TEST_API_KEY
from tests.airflow_helpers import DagResult
from tests.airflow_helpers import run_dag as run_dag_and_collect
from tests.e2e.stack import REPO as REPO  # the repository root, one copy for all tests

if TYPE_CHECKING:
    from airflow.sdk import DAG

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


# --------------------------------------------------------------------------- counting on the emulator


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
    return emulator.requests()["by_operation"].get("images.list", 0)


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


def tiny_png(width: int = 8, height: int = 8, seed: int = 0) -> bytes:
    raw = b"".join(b"\0" + bytes([seed % 256, y % 256, 0]) * width for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


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


@dataclass
class Outcome:
    """What a run did, per task: state, try number, return value and failure messages."""

    result: DagResult
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.result.state

    @property
    def states(self) -> dict[str, str | None]:
        return {task: state for (task, _), (state, _) in self.result.tasks.items()}

    @property
    def tries(self) -> dict[str, int]:
        return {task: tries for (task, _), (_, tries) in self.result.tasks.items()}

    @property
    def xcom(self) -> dict[str, Any]:
        return {task: self.result.xcom(task) for (task, _) in self.result.tasks}

    def error(self, task_id: str) -> str:
        return "\n".join(self.errors.get(task_id, []))


def run_dag(dag: DAG, **test_kwargs: Any) -> Outcome:
    """``airflow_helpers.run_dag`` plus the failure messages recorded by ``bloom_dag``'s callbacks."""
    for key in [k for k in _FAILURES if k[0] == dag.dag_id]:
        del _FAILURES[key]
    result = run_dag_and_collect(dag, **test_kwargs)
    errors = {task: msgs for (dag_id, task), msgs in _FAILURES.items() if dag_id == dag.dag_id}
    assert API_KEY not in repr(result.xcoms()) + repr(errors), "the API key leaked into an XCom or an error"
    return Outcome(result, errors)


def completed_images(n: int = 1, prompt: str = "a lighthouse at dawn", **kwargs: Any) -> list[dict[str, Any]]:
    """Setup: generate ``n`` variants and wait for them (through the hook, over HTTP)."""
    from airflow_provider_bloom.hooks.bloom import BloomHook

    hook = BloomHook()
    ids = hook.generate_images(prompt=prompt, variant_count=n, **kwargs)["ids"]
    return hook.wait_for_images(ids, timeout=30)
