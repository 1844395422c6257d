"""The first Bloom trigger in a process freezes the heap it finds, once, so full collections stay short.

Why (figures in bench/bench_trigger_burst.py and triggers/_gc.py): in a fresh triggerer, a burst of
1,000 triggers set off a full garbage collection over Airflow's ~156,000 import-time objects, which
held the event loop for about 100 ms. These tests hold the mechanism, not a time: the freeze happens
once per process, before a trigger's first request, and afterwards a full collection no longer walks
Airflow's import-time objects.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.triggers import _gc
from airflow_provider_bloom.triggers.brands import BloomBrandTrigger
from airflow_provider_bloom.triggers.hub import active_hubs
from airflow_provider_bloom.triggers.images import BloomImagesTrigger

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def freezes(monkeypatch) -> list[int]:
    """A process that has not frozen yet; each ``gc.freeze()`` (not really done) records the live hubs."""
    calls: list[int] = []
    monkeypatch.setattr(_gc, "_frozen", False)
    monkeypatch.setattr(_gc.gc, "freeze", lambda: calls.append(len(active_hubs())))
    return calls


def test_the_heap_is_frozen_once_per_process(freezes):
    assert _gc.freeze_startup_heap() is True
    assert _gc.freeze_startup_heap() is False
    assert freezes == [0]


async def test_a_burst_of_triggers_freezes_once_before_any_hub_starts(bloom_conn, freezes):
    bloom_conn.configure(generation_seconds=0.3)
    ids = BloomHook().generate_images(prompt="a burst", variant_count=5)["ids"]
    triggers = [BloomImagesTrigger(image_ids=[i], deadline=time.time() + 30) for i in ids]
    triggers.append(BloomBrandTrigger(brand_id=DEFAULT_BRAND_ID, deadline=time.time() + 30))

    async def event_of(trigger) -> dict:
        (event,) = [e.payload async for e in trigger.run()]
        return event

    events = await asyncio.gather(*(event_of(t) for t in triggers))
    assert [e["status"] for e in events] == ["success"] * len(triggers)
    assert freezes == [0]  # once for the six, and before the first hub (so before any request)


PROBE = """
import asyncio, gc, json, time
import airflow.triggers.base  # what the triggerer has loaded before it runs a trigger
from airflow_provider_bloom.triggers.images import BloomImagesTrigger

frozen_at_import = gc.get_freeze_count()  # importing a trigger (a worker deferring) freezes nothing
tracked_before = len(gc.get_objects())
trigger = BloomImagesTrigger(image_ids=["00000000-0000-4000-8000-000000000001"], deadline=time.time() - 1)

async def run():
    return [e.payload async for e in trigger.run()]

events = asyncio.run(run())
print(json.dumps({
    "status": events[0]["status"],
    "frozen_at_import": frozen_at_import,
    "tracked_before": tracked_before,
    "frozen": gc.get_freeze_count(),
    "tracked_after": len(gc.get_objects()),  # what a full collection walks: the frozen ones are left out
}))
"""


def test_after_the_first_trigger_a_full_collection_skips_airflows_import_time_heap(tmp_path):
    """In a fresh interpreter: once one trigger has run, a full collection walks a few thousand objects."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "AIRFLOW_HOME": str(tmp_path),
        # nothing listens there: the deadline has passed, so the trigger fires `timeout` without a request
        "AIRFLOW_CONN_BLOOM_DEFAULT": json.dumps(
            {"conn_type": "bloom", "host": "http://127.0.0.1:9/api/v1", "password": "bloom_sk_gc_probe"}
        ),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["status"] == "timeout"
    assert found["frozen_at_import"] == 0
    assert found["tracked_before"] > 50_000  # Airflow's heap, which a full collection used to walk
    assert found["frozen"] >= found["tracked_before"] * 0.9
    assert found["tracked_after"] < found["tracked_before"] / 5
