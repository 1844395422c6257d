"""Benchmark: the event-loop stall when a fresh triggerer starts 1,000 Bloom triggers at once.

Run: ``.venv/bin/python bench/bench_trigger_burst.py`` (about 3 minutes, loopback only). The hub
benchmark (``bench_hub.py``) starts its triggers in a process that has already used ``BloomHook``;
a triggerer picking up a burst has not: this benchmark times that case.

The parent starts the Bloom emulator (rate limit off) and, for each run, creates the images (still
running), then starts a **fresh** ``python`` process that imports only what Airflow's triggerer has
imported before it runs a trigger (``airflow.triggers.base``; ``--preload`` names another module, e.g.
``airflow.jobs.triggerer_job_runner``). That process runs one event loop with a heartbeat coroutine
(sleeps 5 ms, records every gap beyond that) and does what the triggerer's ``create_triggers`` does
for each of the 1,000 triggers: import the class by its class path (once), build it from its
serialized kwargs, and run it (``async for event in trigger.run()``) in its own task, yielding to the
loop between triggers. The images finish within 2 s of the start; every trigger must fire ``success``
(at the default 60 requests per minute the hub's sweeps take about 20 s).

Measured per run: the longest heartbeat gap (event-loop stall) over the whole run and over the
start-up (until 1 s after the last trigger was built), the five longest gaps and when they happened,
and the full (generation 2) garbage collections during the burst (count, longest; a full collection
holds the loop for as long as it takes). Repeated (``--runs``, default 7); median, min and max are
reported. Target: no stall over 100 ms. Diagnosis: ``--debug`` turns on asyncio's debug mode and
lists the callbacks that held the loop over 10 ms; ``--profile`` prints a cProfile of the child;
``--gc-off`` disables the cyclic garbage collector in the child (what is left is not a collection).

Writes ``bench/results/trigger_burst.json`` and prints a markdown table. Exits 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "trigger_burst.json"
API_KEY = "bloom_sk_bench_burst_0123456789abcdef"
CLASSPATH = "airflow_provider_bloom.triggers.images.BloomImagesTrigger"
TARGET_MS = 100.0
TRIGGERS = 1000
RUNS = 7
FINISH_WITHIN_S = 2.0
HEARTBEAT_S = 0.005
PRELOAD = "airflow.triggers.base"


# --------------------------------------------------------------------------- the fresh triggerer


def child(groups: list[list[str]], *, debug: bool, profile: bool, gc_off: bool) -> dict[str, Any]:
    """In a fresh process (``--preload`` imported): run the triggers as the triggerer does; time the loop."""
    import asyncio
    import gc
    import importlib
    import logging

    def import_string(dotted_path: str) -> Any:  # Airflow's own helper moved between 3.1 and 3.3
        module, name = dotted_path.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)

    slow: list[str] = []

    class SlowCallbacks(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = (
                record.getMessage()
            )  # "Executing <Task ... coro=<what() running at where> ...> took 0.1 seconds"
            if " took " in message:
                what = message.split("coro=<", 1)[-1].split(" running at ", 1)[0][:100]
                slow.append(f"{what} took {message.rsplit(' took ', 1)[1]}")

    collections: list[tuple[int, float, float]] = []  # (generation, perf_counter at start, seconds)
    gc_started = [0.0]

    def gc_timer(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            collections.append((info["generation"], gc_started[0], time.perf_counter() - gc_started[0]))

    gc.callbacks.append(gc_timer)
    if gc_off:
        gc.disable()

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if debug:
            loop.slow_callback_duration = 0.01
            logging.getLogger("asyncio").addHandler(SlowCallbacks())
        gaps: list[tuple[float, float]] = []  # (perf_counter at the end of the gap, gap beyond the 5 ms)
        stop = asyncio.Event()

        async def heartbeat() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(HEARTBEAT_S)
                now = time.perf_counter()
                gaps.append((now, now - last - HEARTBEAT_S))
                last = now

        async def run_trigger(trigger: Any) -> dict[str, Any]:
            async for event in trigger.run():
                return dict(event.payload)
            raise AssertionError("no event")

        beat = loop.create_task(heartbeat())
        await asyncio.sleep(0.2)  # the heartbeat is steady before the burst
        deadline = time.time() + 120
        classes: dict[str, Any] = {}
        started = time.perf_counter()
        tasks = []
        for ids in groups:  # as TriggerRunner.create_triggers does it, trigger by trigger
            await asyncio.sleep(0)
            if CLASSPATH not in classes:
                classes[CLASSPATH] = import_string(CLASSPATH)
            await asyncio.sleep(0)
            trigger = classes[CLASSPATH](image_ids=list(ids), deadline=deadline)
            tasks.append(loop.create_task(run_trigger(trigger)))
        created = time.perf_counter()
        events = await asyncio.gather(*tasks)
        finished = time.perf_counter()
        stop.set()
        await beat
        burst = [(t, g) for t, g in gaps if t >= started]
        full = [(at, d) for gen, at, d in collections if gen == 2 and at >= started]
        return {
            "triggers": len(groups),
            "ok": sum(e.get("status") == "success" for e in events),
            "stall_max_ms": round(max(g for _, g in burst) * 1000, 1),
            # the start-up: building the triggers, then one second for the lookup, hub and first requests
            "stall_startup_max_ms": round(max(g for t, g in burst if t <= created + 1.0) * 1000, 1),
            "stalls_over_50ms": sum(g > 0.05 for _, g in burst),
            "top_stalls_ms_at_s": [
                (round(g * 1000, 1), round(t - started, 2)) for t, g in sorted(burst, key=lambda x: -x[1])[:5]
            ],
            "full_gc_count": len(full),
            "full_gc_max_ms": round(max((d for _, d in full), default=0.0) * 1000, 1),
            "gc_frozen_objects": gc.get_freeze_count(),
            "create_s": round(created - started, 3),
            "elapsed_s": round(finished - started, 2),
            "slow_callbacks": slow[:10],
        }

    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result: dict[str, Any] = profiler.runcall(asyncio.run, main(), debug=debug)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        return result
    return asyncio.run(main(), debug=debug)


# --------------------------------------------------------------------------- the parent


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(root_url: str, home: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_BLOOM_DEFAULT": json.dumps(
                {
                    "conn_type": "bloom",
                    "host": f"{root_url}/api/v1",
                    "password": API_KEY,
                    "extra": {"brand_session_id": "00000000-0000-4000-8000-00000000b100"},
                }
            ),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a deployment runs with its bytecode cached
    return env


def one_run(emulator: Any, root_url: str, home: str, n: int, flags: list[str]) -> dict[str, Any]:
    """Create ``n`` running images, start a fresh triggerer process, let them finish, read its figures."""
    from airflow_provider_bloom.hooks.bloom import BloomHook  # the parent only: the child stays fresh

    os.environ.update(child_env(root_url, home))
    hook = BloomHook()
    groups = [list(hook.generate_images(prompt=f"burst {k}", variant_count=1)["ids"]) for k in range(n)]
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *flags]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None if "--profile" in flags else subprocess.DEVNULL,
        env=child_env(root_url, home),
        cwd=ROOT,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"  # --preload imported: the images finish from now on
    emulator.reschedule_images(FINISH_WITHIN_S, [i for g in groups for i in g])
    proc.stdin.write(json.dumps(groups) + "\n")
    proc.stdin.flush()
    out = proc.stdout.read()
    proc.wait(180)
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--triggers", type=int, default=TRIGGERS)
    parser.add_argument("--preload", default=PRELOAD, help=f"imported before the burst (default {PRELOAD})")
    parser.add_argument("--debug", action="store_true", help="asyncio debug mode: list slow callbacks")
    parser.add_argument("--profile", action="store_true", help="cProfile the child (to stderr)")
    parser.add_argument("--gc-off", action="store_true", help="diagnosis: no cyclic GC in the child")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = parser.parse_args()

    if args.child:
        __import__(args.preload)  # what the triggerer has imported before it runs a trigger
        print("ready", flush=True)
        groups = json.loads(sys.stdin.readline())
        result = child(groups, debug=args.debug, profile=args.profile, gc_off=args.gc_off)
        print(json.dumps(result), flush=True)
        return 0

    from airflow_provider_bloom.emulator import EmulatorClient

    port = free_port()
    root = f"http://127.0.0.1:{port}"
    emulator_cmd = [
        sys.executable,
        "-m",
        "airflow_provider_bloom.emulator",
        "--host=127.0.0.1",
        f"--port={port}",
        "--generation-seconds=600",
        "--rate-limit=0",
        "--unlimited-credits",
        "--log-level=warning",
    ]
    proc = subprocess.Popen(emulator_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    emulator = EmulatorClient(root)
    runs: list[dict[str, Any]] = []
    try:
        for _ in range(100):
            try:
                emulator.health()
                break
            except Exception:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory(prefix="bloom-bench-burst-") as home:
            for _ in range(args.runs):
                flags = [f"--{name}" for name in ("debug", "profile") if getattr(args, name)]
                flags += ["--gc-off"] if args.gc_off else []
                flags += [f"--preload={args.preload}"]
                run = one_run(emulator, root, home, args.triggers, flags)
                runs.append(run)
                print(json.dumps(run), flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
    stalls = [r["stall_max_ms"] for r in runs]
    result: dict[str, Any] = {
        "triggers": args.triggers,
        "preload": args.preload,
        "runs": len(runs),
        "stall_max_ms_median": round(statistics.median(stalls), 1),
        "stall_max_ms_min": min(stalls),
        "stall_max_ms_max": max(stalls),
        "stall_startup_max_ms_median": round(statistics.median(r["stall_startup_max_ms"] for r in runs), 1),
        "full_gc_max_ms_median": round(statistics.median(r["full_gc_max_ms"] for r in runs), 1),
        "full_gc_max_ms_max": max(r["full_gc_max_ms"] for r in runs),
        "elapsed_s_median": round(statistics.median(r["elapsed_s"] for r in runs), 2),
        "ok_min": min(r["ok"] for r in runs),
        "target_ms": TARGET_MS,
    }
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"summary": result, "runs": runs}, indent=2) + "\n")
    print()
    print(f"| {args.triggers:,} triggers, fresh process | median | min | max |")
    print("|---|---:|---:|---:|")
    print(
        f"| longest event-loop stall | {result['stall_max_ms_median']} ms | {result['stall_max_ms_min']} ms "
        f"| {result['stall_max_ms_max']} ms |"
    )
    print(
        f"| longest full garbage collection | {result['full_gc_max_ms_median']} ms | "
        f"{min(r['full_gc_max_ms'] for r in runs)} ms | {result['full_gc_max_ms_max']} ms |"
    )
    missed = result["stall_max_ms_max"] > TARGET_MS or result["ok_min"] != args.triggers
    if missed:
        print(f"\nmissed the target: every trigger succeeds, no stall over {TARGET_MS:g} ms")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
