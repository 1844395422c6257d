"""Benchmark: the Bloom emulator must never be the bottleneck.

Run: ``.venv/bin/python bench/bench_emulator.py`` (about 30 s, loopback only, stops by itself).
It starts ``python -m airflow_provider_bloom.emulator`` as a subprocess (default INFO logging, one
line per request, to a temporary file) so that its memory can be read with psutil, then:

1. **Long-poll waits** -- generates 100 images that finish 6-9 s later (uniform jitter) and opens
   1,000 concurrent ``GET /images/{id}?wait=true`` requests (10 per image) with ``httpx.AsyncClient``
   (sharded over 100 clients of 10 connections: httpx scans its whole pool on every request, which is
   quadratic in one large pool). Measured: seconds until all 1,000 waits are held (the emulator's
   ``/_emulator/health`` ``waiting`` counter), the emulator's RSS sampled every 50 ms (peak), and the
   wake latency of every wait: ``time.time()`` when the client has the answer minus the image's
   ``terminal_at`` from ``/_emulator/images`` (same machine, same clock).
2. **Simple GETs** -- ``GET /api/v1/account`` (auth, routing, counters, log line) from 16 concurrent
   keep-alive connections for 5 s. Measured: answers per second and latency percentiles. The client
   (Python/httpx) shares the 2 cores with the emulator, so this is a lower bound.

Writes ``bench/results/emulator.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "emulator.json"
API_KEY = "bloom_sk_bench_0123456789abcdef"
BRAND_ID = "00000000-0000-4000-8000-00000000b100"
HEADERS = {"x-api-key": API_KEY}
TARGETS = {
    "waits": 1000,
    "rss_mb_max": 200.0,
    "gets_per_second_min": 500.0,
    "wake_latency_ms_median_max": 100.0,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_emulator(
    port: int, log_file: Path, generation_seconds: float, jitter: float
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "airflow_provider_bloom.emulator",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--generation-seconds={generation_seconds}",
        f"--generation-jitter={jitter}",
        "--rate-limit=0",
        "--unlimited-credits",
        "--log-level=info",
    ]
    with log_file.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)


def wait_until_serving(root: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited with {process.returncode}")
        try:
            if httpx.get(f"{root}/_emulator/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the emulator did not start")


class RssSampler:
    """Samples a process' resident memory every ``interval`` seconds on the event loop."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> int:
        rss = int(self.process.memory_info().rss)
        self.peak = max(self.peak, rss)
        return rss

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sample()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _mb(value: int) -> float:
    return round(value / 1024 / 1024, 1)


async def bench_waits(root: str, pid: int, waits: int, images: int) -> dict[str, Any]:
    base = root + "/api/v1"
    shards = max(1, waits // 10)
    clients = [
        httpx.AsyncClient(
            base_url=base, headers=HEADERS, timeout=120, limits=httpx.Limits(max_connections=10)
        )
        for _ in range(shards)
    ]
    admin = httpx.AsyncClient(base_url=root, timeout=30)
    sampler = RssSampler(pid)
    baseline = sampler.sample()
    try:
        ids: list[str] = []
        while len(ids) < images:
            count = min(5, images - len(ids))
            body = {"prompt": "benchmark", "brandSessionId": BRAND_ID, "variantCount": count}
            response = await admin.post("/api/v1/images/generations", json=body, headers=HEADERS)
            response.raise_for_status()
            ids += response.json()["data"]["ids"]

        async def wait_once(n: int) -> tuple[str, float, str]:
            image_id = ids[n % len(ids)]
            response = await clients[n % shards].get(
                f"/images/{image_id}", params={"wait": "true", "timeout": 120}
            )
            return image_id, time.time(), response.json()["data"]["status"]

        with sampler:
            opened = time.monotonic()
            tasks = [asyncio.create_task(wait_once(n)) for n in range(waits)]
            held, all_held_after = 0, None
            while held < waits and time.monotonic() - opened < 30:
                await asyncio.sleep(0.05)
                held = (await admin.get("/_emulator/health")).json()["waiting"]
                if held >= waits:
                    all_held_after = time.monotonic() - opened
            rss_all_held = sampler.sample()
            results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=90)
        records = (await admin.get("/_emulator/images", params={"ids": ",".join(ids)})).json()["images"]
    finally:
        for client in clients:
            await client.aclose()
        await admin.aclose()
    terminal = {r["id"]: r["terminal_at"] for r in records}
    latencies = [(at - terminal[image_id]) * 1000 for image_id, at, _ in results]
    return {
        "waits": waits,
        "images": images,
        "all_held_after_s": round(all_held_after, 2) if all_held_after is not None else None,
        "max_held": held,
        "answered": len(results),
        "all_completed": all(status == "completed" for _, _, status in results),
        "rss_mb_baseline": _mb(baseline),
        "rss_mb_all_waits_held": _mb(rss_all_held),
        "rss_mb_peak": _mb(sampler.peak),
        "wake_latency_ms": {
            "median": round(statistics.median(latencies), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "max": round(max(latencies), 1),
            "min": round(min(latencies), 1),
        },
    }


async def bench_gets(root: str, pid: int, seconds: float, concurrency: int) -> dict[str, Any]:
    base = root + "/api/v1"
    clients = [
        httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=10, limits=httpx.Limits(max_connections=1))
        for _ in range(concurrency)
    ]
    latencies: list[float] = []
    errors = 0
    sampler = RssSampler(pid)

    async def worker(client: httpx.AsyncClient, stop_at: float) -> None:
        nonlocal errors
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            response = await client.get("/account")
            if response.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

    try:
        for client in clients:  # open the keep-alive connections first
            (await client.get("/account")).raise_for_status()
        cpu_before = psutil.Process(pid).cpu_times()
        with sampler:
            started = time.monotonic()
            await asyncio.gather(*(worker(c, started + seconds) for c in clients))
            elapsed = time.monotonic() - started
        cpu_after = psutil.Process(pid).cpu_times()
    finally:
        for client in clients:
            await client.aclose()
    server_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return {
        "path": "GET /api/v1/account",
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "answers": len(latencies),
        "errors": errors,
        "per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 2),
            "p99": round(percentile(latencies, 0.99), 2),
        },
        "emulator_cpu_share": round(server_cpu / elapsed, 2),
        "emulator_cpu_ms_per_request": round(server_cpu * 1000 / max(1, len(latencies)), 3),
        # computed, not measured: what one core of emulator CPU would serve at this cost per request
        "computed_capacity_per_core_per_second": round(len(latencies) / max(server_cpu, 1e-9)),
        "rss_mb_peak": _mb(sampler.peak),
    }


def markdown(result: dict[str, Any]) -> str:
    waits, gets = result["waits"], result["gets"]
    latency = waits["wake_latency_ms"]
    rows = [
        (
            "Concurrent long-poll waits held",
            f"{waits['max_held']} (all held {waits['all_held_after_s']} s after opening)",
            f">= {TARGETS['waits']}",
        ),
        (
            "Emulator RSS: idle / all waits held / peak",
            f"{waits['rss_mb_baseline']} / {waits['rss_mb_all_waits_held']} / {waits['rss_mb_peak']} MB",
            f"< {TARGETS['rss_mb_max']:.0f} MB",
        ),
        (
            "Wake latency terminal -> client (median / p95 / max)",
            f"{latency['median']} / {latency['p95']} / {latency['max']} ms",
            f"median <= {TARGETS['wake_latency_ms_median_max']:.0f} ms",
        ),
        (
            f"Simple GETs ({gets['path']}, {gets['concurrency']} connections)",
            f"{gets['per_second']:.0f} /s",
            f">= {TARGETS['gets_per_second_min']:.0f} /s",
        ),
        ("GET latency (p50 / p99)", f"{gets['latency_ms']['p50']} / {gets['latency_ms']['p99']} ms", ""),
        (
            "Emulator CPU per GET (the client is the limit)",
            f"{gets['emulator_cpu_ms_per_request']} ms, CPU share {gets['emulator_cpu_share']}"
            f" (computed: ~{gets['computed_capacity_per_core_per_second']} /s per core)",
            "",
        ),
    ]
    lines = ["| Measure | Result | Target |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bloom-bench-emulator-") as tmp:
        log_file = Path(tmp) / "emulator.log"
        process = start_emulator(port, log_file, args.generation_seconds, args.generation_jitter)
        try:
            wait_until_serving(root, process)
            waits = await bench_waits(root, process.pid, args.waits, args.images)
            gets = await bench_gets(root, process.pid, args.get_seconds, args.concurrency)
            log_lines = sum(1 for _ in log_file.open("rb"))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return {
        "benchmark": "Bloom emulator capacity (long-poll waits, memory, simple GETs)",
        "setup": {
            "emulator": "python -m airflow_provider_bloom.emulator (uvicorn, 1 process), INFO log to a file",
            "client": "httpx.AsyncClient in another process on the same machine, loopback",
            "generation_seconds": [args.generation_seconds, args.generation_seconds + args.generation_jitter],
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "emulator_log_lines": log_lines,
        },
        "targets": TARGETS,
        "waits": waits,
        "gets": gets,
        "passed": {
            "waits": waits["max_held"] >= TARGETS["waits"] and waits["answered"] == args.waits,
            "rss": waits["rss_mb_peak"] < TARGETS["rss_mb_max"],
            "gets_per_second": gets["per_second"] >= TARGETS["gets_per_second_min"],
            "wake_latency": waits["wake_latency_ms"]["median"] <= TARGETS["wake_latency_ms_median_max"],
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--generation-seconds", type=float, default=6.0)
    parser.add_argument("--generation-jitter", type=float, default=3.0)
    parser.add_argument("--get-seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    raise_open_file_limit()
    started = time.monotonic()
    result = asyncio.run(asyncio.wait_for(run(args), timeout=180))
    result["setup"]["elapsed_seconds"] = round(time.monotonic() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwritten to {args.output}")
    return 0 if all(result["passed"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
