"""Benchmark: BloomGenerateBatchOperator in a real Airflow deployment, against the mapped way.

Run: ``nice -n 10 .venv/bin/python bench/bench_batch.py`` (all scenarios: about 45 minutes, most of it
the two runs at Bloom's real limit; loopback only). ``--scenario NAME`` runs one (the others' results in
the JSON file are kept), ``--rows N`` or ``--quick`` run smaller batches (printed, not written).

Each scenario starts its own deployment, the one of the end-to-end tests (tests/e2e/stack.py: api-server,
scheduler, dag-processor and triggerer as separate processes, LocalExecutor with 4 slots, SQLite) and its
own emulator by its command line at the default image speed (3 s), then triggers one run of a DAG of
tests/e2e/dags/bloom_batch_e2e.py through the REST API, rows from a CSV file:

* ``large``: 10,000 rows, connection ``requests_per_minute`` 6,000 against an emulator enforcing 6,000 a
  minute; the batch task defers (``deferrable=True``, the default ``defer_after``);
* ``real``: 1,100 rows at Bloom's real limit (the emulator enforces 120 a minute), connection
  ``requests_per_minute`` 60 and ``wait_requests_per_minute`` 60;
* ``mapped``: the same 1,100 rows the old way: one mapped ``BloomGenerateImageOperator`` per row, then one
  deferrable ``BloomImageSensor`` (dags_examples/bloom_batch_collect.py's shape), same emulator and
  connection; ``[core] max_map_length`` is raised to 2,048 in that deployment (the default, 1,024, refuses
  1,100 mapped task instances).

Measured: the submission rate achieved (from the emulator's creation time of the first and last image)
against ``requests_per_minute``; the time from the first POST to the manifest written (batch; for the
mapped run, to the sensor's end) against the floor (rows / requests_per_minute, plus one image's time);
the peak RSS of the batch task's process (psutil, sampled every 0.25 s: the task runner titled ``airflow
worker -- <ti id>``, before and after its deferral); the size of the XCom return value; the requests
answered 429; the task instances the run used. Writes ``bench/results/batch.json`` and prints a table.
Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.e2e.batch_stack import BatchStack, batch_stack, read_manifest, task_runner, write_rows  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "batch.json"
IMAGE_SECONDS = 3.0  # the emulator's default image time
#: name -> (rows, emulator limit per minute, requests_per_minute, wait_requests_per_minute, DAG)
SCENARIOS: dict[str, tuple[int, int, int, int, str]] = {
    "large": (10_000, 6000, 6000, 60, "bloom_batch_bench"),
    # The same with 5% of the key's limit left to everything else on it (the guard's GET /credits, the
    # sweep, arrival jitter between the threads), to compare with "large" at the limit itself.
    "large_headroom": (10_000, 6000, 5700, 60, "bloom_batch_bench"),
    "real": (1_100, 120, 60, 60, "bloom_batch_bench"),
    "mapped": (1_100, 120, 60, 60, "bloom_batch_bench_mapped"),
}
QUICK_ROWS = {"large": 1000, "large_headroom": 1000, "real": 40, "mapped": 40}
PARALLELISM = 4
TARGETS = {"rate_ratio": 0.9, "peak_rss_mb": 300, "real_over_floor": 1.10}


class RssSampler(threading.Thread):
    """Peak RSS of the processes running one task instance, sampled until stopped."""

    def __init__(self, ti_id: str, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.ti_id, self.every = ti_id, every
        self.peak_mb = 0.0
        self.processes: set[int] = set()
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        process = None
        while not self._halt.is_set():
            try:
                if process is None or not process.is_running():
                    process = task_runner(self.ti_id)
                if process is not None:
                    self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)
                    self.processes.add(process.pid)
                    self.samples += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied, RuntimeError):
                process = None
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def last_progress(log: str) -> str | None:
    found = re.findall(r"Submitted [\d,]+/[\d,]+ rows[^\"]*", log)
    return found[-1] if found else None


def run_scenario(name: str, rows: int) -> dict[str, Any]:
    _, limit, per_minute, wait_per_minute, dag_id = SCENARIOS[name]
    home = Path(tempfile.mkdtemp(prefix=f"bench-batch-{name}-"))
    extra_env = {"AIRFLOW__CORE__PARALLELISM": str(PARALLELISM)}
    if name == "mapped":
        extra_env["AIRFLOW__CORE__MAX_MAP_LENGTH"] = str(max(1024, 2 ** math.ceil(math.log2(rows))))
    conn = {
        "bloom_batch_bench": {"requests_per_minute": per_minute, "wait_requests_per_minute": wait_per_minute}
    }
    print(f"[{name}] {rows} rows; deployment in {home}", flush=True)
    with batch_stack(
        home, conn, emulator_args=("--rate-limit", str(limit)), extra_env=extra_env, dags=(dag_id,)
    ) as stack:
        return measure(stack, name, rows, home, limit, per_minute, wait_per_minute, dag_id)


def measure(
    stack: BatchStack,
    name: str,
    rows: int,
    home: Path,
    limit: int,
    per_minute: int,
    wait_per_minute: int,
    dag_id: str,
) -> dict[str, Any]:
    rows_file = write_rows(home / "rows.csv", rows, name)
    output = home / "out" / "generate.jsonl"
    conf: dict[str, Any] = {"rows": str(rows_file)}
    if dag_id != "bloom_batch_bench_mapped":
        conf["output"] = str(output)
    triggered = time.time()
    run_id = stack.trigger(dag_id, **conf)
    sampler: RssSampler | None = None
    last_print = [0.0]

    def on_poll() -> None:
        nonlocal sampler
        if sampler is None and dag_id == "bloom_batch_bench":
            ti = stack.task_instance(dag_id, run_id, "generate")
            if ti.get("id") and ti["state"] in ("running", "deferred"):
                sampler = RssSampler(str(ti["id"]))
                sampler.start()
        if time.monotonic() - last_print[0] > 60:
            last_print[0] = time.monotonic()
            counters = stack.counters()
            print(
                f"[{name}] {time.time() - triggered:.0f}s: {counters['generations']} POSTs, "
                f"{counters['answered_429']} answered 429",
                flush=True,
            )

    try:
        state, _ = stack.wait_for_run(dag_id, run_id, timeout=7200, on_poll=on_poll, interval=1.0)
    except BaseException:
        print(stack.report())
        raise
    finally:
        if sampler is not None:
            sampler.stop()
    run = stack.airflow.api.get(stack.run_path(dag_id, run_id))
    tis = stack.task_instances(dag_id, run_id)
    counters = stack.counters()
    # This run's images (the emulator also holds sample images created before it started).
    images = [i for i in stack.emulator.image_records() if float(i["created_at"]) >= triggered - 1]
    created = sorted(float(i["created_at"]) for i in images)
    terminal = [float(i["terminal_at"]) for i in images if i.get("terminal_at")]
    first_post, last_post = created[0], created[-1]
    achieved = 60.0 * (len(created) - 1) / (last_post - first_post) if len(created) > 1 else 0.0
    floor = 60.0 * rows / per_minute + IMAGE_SECONDS
    result: dict[str, Any] = {
        "scenario": name,
        "way": "mapped BloomGenerateImageOperator + BloomImageSensor"
        if name == "mapped"
        else "batch operator",
        "rows": rows,
        "state": state,
        "emulator_limit_per_minute": limit,
        "requests_per_minute": per_minute,
        "wait_requests_per_minute": wait_per_minute,
        "parallelism": PARALLELISM,
        "paid_posts": counters["generations"],
        "paid_posts_effective": counters["paid_posts_effective"],
        "answered_429": counters["answered_429"],
        "requests_total": counters.get("total"),
        "images_list_requests": counters["by_operation"].get("images.list", 0),
        "task_instances": len(tis),
        "max_try_number": max(ti["try_number"] for ti in tis),
        "submission_rate_per_minute": round(achieved, 1),
        "submission_rate_ratio": round(achieved / per_minute, 3),
        "submission_s": round(last_post - first_post, 1),
        "floor_s": round(floor, 1),
        "run_s": round((epoch(run["end_date"]) or time.time()) - (epoch(run["start_date"]) or triggered), 1),
        "trigger_to_first_post_s": round(first_post - triggered, 1),
        "last_image_terminal_after_first_post_s": round(max(terminal) - first_post, 1) if terminal else None,
    }
    if dag_id == "bloom_batch_bench":
        summary = stack.xcom(dag_id, run_id, "generate")
        records = read_manifest(output)
        done = output.stat().st_mtime
        log = "".join(stack.task_log(dag_id, run_id, "generate", n) for n in (1, 2))
        result.update(
            {
                "first_post_to_manifest_s": round(done - first_post, 1),
                "over_floor": round((done - first_post) / floor, 3),
                "manifest_records": len(records),
                "completed": sum(r["status"] == "completed" for r in records),
                "xcom_bytes": len(json.dumps(summary)),
                "peak_rss_mb": round(sampler.peak_mb, 1) if sampler else None,
                "rss_samples": sampler.samples if sampler else 0,
                "task_processes": len(sampler.processes) if sampler else 0,
                "deferred": "Deferring: waiting in the triggerer" in log,
                "operator_progress": last_progress(log),
            }
        )
    else:
        collect = next(ti for ti in tis if ti["task_id"] == "collect")
        done = epoch(collect["end_date"]) or time.time()
        result.update(
            {
                "first_post_to_sensor_done_s": round(done - first_post, 1),
                "over_floor": round((done - first_post) / floor, 3),
                "failed_task_instances": sum(ti["state"] != "success" for ti in tis),
            }
        )
    print(json.dumps(result), flush=True)
    return result


def missed_targets(result: dict[str, Any]) -> list[str]:
    missed = []
    if result["state"] != "success":
        missed.append(f"{result['scenario']}: run {result['state']}")
    if result["way"] == "batch operator":
        if result["paid_posts"] != result["rows"] or result["completed"] != result["rows"]:
            missed.append(
                f"{result['scenario']}: {result['paid_posts']} POSTs, {result['completed']} completed"
            )
        if result["submission_rate_ratio"] < TARGETS["rate_ratio"]:
            missed.append(f"{result['scenario']}: rate ratio {result['submission_rate_ratio']}")
        if (result["peak_rss_mb"] or 0) > TARGETS["peak_rss_mb"]:
            missed.append(f"{result['scenario']}: peak RSS {result['peak_rss_mb']} MB")
    if result["scenario"] == "real":
        if result["answered_429"]:
            missed.append(f"real: {result['answered_429']} answered 429")
        if result["over_floor"] > TARGETS["real_over_floor"]:
            missed.append(f"real: {result['over_floor']} x the floor")
    return missed


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| scenario | rows | task instances | POSTs (paid) | answered 429 | rate achieved / given "
        "| first POST -> done | floor | peak RSS | XCom |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name in SCENARIOS:
        r = results.get(name)
        if r is None:
            continue
        done = r.get("first_post_to_manifest_s", r.get("first_post_to_sensor_done_s"))
        rss = f"{r['peak_rss_mb']:.0f} MB" if r.get("peak_rss_mb") else "-"
        xcom = f"{r['xcom_bytes']} B" if r.get("xcom_bytes") else "-"
        rate = f"{r['submission_rate_per_minute']:.0f} / {r['requests_per_minute']}/min"
        lines.append(
            f"| {name} ({r['way']}) | {r['rows']:,} | {r['task_instances']:,} "
            f"| {r['paid_posts']:,} ({r['paid_posts_effective']:,}) "
            f"| {r['answered_429']:,} | {rate} ({r['submission_rate_ratio']:.2f}) "
            f"| {done:.0f} s ({r['over_floor']:.2f} x) | {r['floor_s']:.0f} s | {rss} | {xcom} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--rows", type=int, help="rows per batch (a trial run: results are not written)")
    parser.add_argument("--quick", action="store_true", help="small batches (results are not written)")
    args = parser.parse_args()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    trial = args.quick or args.rows is not None
    results: dict[str, dict[str, Any]] = {}
    missed: list[str] = []
    for name in names:
        rows = args.rows or (QUICK_ROWS[name] if args.quick else SCENARIOS[name][0])
        results[name] = run_scenario(name, rows)
        missed += missed_targets(results[name])
    if not trial:
        stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        stored.update(results)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(stored, indent=2) + "\n")
        results = stored
    print()
    print(table(results))
    if "real" in results and "mapped" in results:
        real, mapped = results["real"], results["mapped"]
        time_ratio = mapped["first_post_to_sensor_done_s"] / real["first_post_to_manifest_s"]
        ti_ratio = mapped["task_instances"] / real["task_instances"]
        print(
            f"\nmapped / batch at {real['rows']:,} rows: {ti_ratio:.0f}x the task instances, "
            f"{time_ratio:.2f}x the time, "
            f"{mapped['answered_429']} vs {real['answered_429']} answered 429"
        )
    if missed:
        print(f"\nmissed a target: {missed}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
