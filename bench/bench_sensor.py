"""Benchmark: BloomImageSensor (deferrable) against one HttpSensor per image, on the same workload.

Run: ``.venv/bin/python bench/bench_sensor.py`` (about 1-2 minutes, loopback only). It starts the
Bloom emulator as a subprocess, then for N = 1, 50 and 500 images:

* **deferrable** -- generates N images and runs ``BloomImagesTrigger`` exactly as the triggerer does
  (``async for event in trigger.run()``). Requests are the emulator's ``images.list`` counter.
  Latency is ``time.time()`` at the event minus the emulator's ``terminal_at`` of the last image
  (both clocks are this machine's). Repeated; the median is reported.
* **HttpSensor** -- what a user would otherwise write: Airflow's generic ``HttpSensor`` polling
  ``GET /images/{id}`` with a ``response_check``, one sensor per image, each in its own thread
  running ``poke()`` for real against the emulator. Requests are the ``images.get`` counter; latency
  is the time from each image's ``terminal_at`` to the poke that saw it terminal.

Time is compressed 10x so that the run is short: images take 2-3 s (standing for 20-30 s) and the
HttpSensor pokes every 1 s (standing for the usual 10 s). Request counts do not depend on the scale
(both the generation time and the poke interval shrink by the same factor). The HttpSensor's latency
is measured in the compressed run and *computed* for real scale (x10); the deferrable sensor's latency
does not depend on the scale (the long-poll answers when the last image turns terminal), so it is
measured as is. Worker slots held while waiting follow from Airflow's execution model and are not
measured: a deferred task holds none; a poking sensor holds one for its whole wait.

Writes ``bench/results/sensor.json`` and prints a markdown table.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "sensor.json"
API_KEY = "bloom_sk_bench_0123456789abcdef"
SCALE = 10.0  # real seconds per benchmark second
GENERATION_SECONDS = 2.0  # + jitter: images finish 2-3 s after they are created (20-30 s at real scale)
GENERATION_JITTER = 1.0
POKE_INTERVAL = 10.0 / SCALE
SIZES = (1, 50, 500)
REPEATS = {1: 5, 50: 5, 500: 3}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_emulator(port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "airflow_provider_bloom.emulator",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--generation-seconds={GENERATION_SECONDS}",
        f"--generation-jitter={GENERATION_JITTER}",
        "--rate-limit=0",
        "--unlimited-credits",
        "--log-level=warning",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def set_environment(root_url: str) -> None:
    """Connections for both sensors, and a throwaway AIRFLOW_HOME (no metadata DB is needed)."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bloom-bench-home-"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ["AIRFLOW_CONN_BLOOM_DEFAULT"] = json.dumps(
        {
            "conn_type": "bloom",
            "host": f"{root_url}/api/v1",
            "password": API_KEY,
            "extra": {"brand_session_id": "00000000-0000-4000-8000-00000000b100"},
        }
    )
    host, port = root_url.removeprefix("http://").split(":")
    # The http provider sends extras that are not request options as headers: x-api-key authenticates.
    os.environ["AIRFLOW_CONN_BLOOM_HTTP"] = json.dumps(
        {
            "conn_type": "http",
            "host": host,
            "port": int(port),
            "schema": "http",
            "extra": {"x-api-key": API_KEY},
        }
    )


def generate(hook: Any, n: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < n:
        batch = min(5, n - len(ids))
        ids.extend(hook.generate_images(prompt=f"benchmark image {len(ids)}", variant_count=batch)["ids"])
    return ids


def last_terminal(emulator: Any, ids: list[str]) -> tuple[float, dict[str, float]]:
    records = []
    for start in range(0, len(ids), 200):
        records.extend(emulator.image_records(ids[start : start + 200]))
    terminal = {r["id"]: float(r["terminal_at"]) for r in records}
    return max(terminal.values()), terminal


def count(emulator: Any, operation: str) -> int:
    return int(emulator.requests()["by_operation"].get(operation, 0))


# --------------------------------------------------------------------------- deferrable


def run_trigger(emulator: Any, hook: Any, n: int) -> dict[str, Any]:
    from airflow_provider_bloom.triggers.images import BloomImagesTrigger

    emulator.reset()
    ids = generate(hook, n)
    before = count(emulator, "images.list")
    trigger = BloomImagesTrigger(image_ids=ids, deadline=time.time() + 120)

    async def first_event() -> tuple[dict[str, Any], float]:
        async for event in trigger.run():
            return event.payload, time.time()
        raise RuntimeError("no event")

    payload, fired_at = asyncio.run(first_event())
    if payload["status"] != "success":
        raise RuntimeError(f"unexpected event: {payload['status']} {payload['message']}")
    last, _ = last_terminal(emulator, ids)
    return {"requests": count(emulator, "images.list") - before, "latency_ms": (fired_at - last) * 1000}


# --------------------------------------------------------------------------- HttpSensor


def run_http_sensors(emulator: Any, hook: Any, n: int) -> dict[str, Any]:
    from airflow.providers.http.sensors.http import HttpSensor

    emulator.reset()
    ids = generate(hook, n)
    before = count(emulator, "images.get")
    detected: dict[str, float] = {}
    errors: list[BaseException] = []

    def sensor_thread(image_id: str) -> None:
        sensor = HttpSensor(
            task_id=f"wait_{image_id}",
            http_conn_id="bloom_http",
            endpoint=f"api/v1/images/{image_id}",
            response_check=lambda response: response.json()["data"]["status"] in ("completed", "failed"),
            poke_interval=POKE_INTERVAL,
        )
        try:
            while not sensor.poke({}):  # type: ignore[arg-type]
                time.sleep(POKE_INTERVAL)
            detected[image_id] = time.time()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sensor_thread, args=(i,), daemon=True) for i in ids]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors or len(detected) != n:
        raise RuntimeError(f"HttpSensor run failed: {errors[:1]!r}, {len(detected)}/{n} detected")
    last, terminal = last_terminal(emulator, ids)
    lags = [(detected[i] - terminal[i]) * 1000 for i in ids]
    # What N sensors on N separate workers would do with the same finish times: pokes at
    # started + k * interval until the first one at or after the image's terminal_at.
    polls = [max(0, math.ceil((terminal[i] - started) / POKE_INTERVAL)) for i in ids]
    model_lags = [(started + k * POKE_INTERVAL - terminal[i]) * 1000 for k, i in zip(polls, ids, strict=True)]
    return {
        "requests": count(emulator, "images.get") - before,
        "latency_ms_median": statistics.median(lags),
        "latency_ms_last": (max(detected.values()) - last) * 1000,
        "requests_model": sum(k + 1 for k in polls),
        "latency_ms_median_model": statistics.median(model_lags),
    }


# --------------------------------------------------------------------------- report


def main() -> None:
    warnings.simplefilter("ignore", FutureWarning)  # the http provider's own deprecated imports
    port = free_port()
    root_url = f"http://127.0.0.1:{port}"
    set_environment(root_url)
    process = start_emulator(port)
    try:
        from airflow_provider_bloom.emulator.client import EmulatorClient
        from airflow_provider_bloom.hooks.bloom import BloomHook

        emulator = EmulatorClient(root_url)
        end = time.monotonic() + 20
        while True:
            try:
                emulator.health()
                break
            except Exception:
                if time.monotonic() > end or process.poll() is not None:
                    raise
                time.sleep(0.1)
        hook = BloomHook()
        started = time.monotonic()
        rows = []
        for n in SIZES:
            deferred = [run_trigger(emulator, hook, n) for _ in range(REPEATS[n])]
            http = run_http_sensors(emulator, hook, n)
            rows.append(
                {
                    "images": n,
                    "deferrable": {
                        "runs": len(deferred),
                        "requests_per_run": [d["requests"] for d in deferred],
                        "expected_requests": math.ceil(n / 50),
                        "latency_ms_median": round(statistics.median(d["latency_ms"] for d in deferred), 1),
                        "latency_ms_all": [round(d["latency_ms"], 1) for d in deferred],
                        "worker_slots_while_waiting": 0,
                    },
                    "http_sensor": {
                        "sensors": n,
                        "requests": http["requests"],
                        "requests_one_worker_per_sensor_computed": http["requests_model"],
                        "latency_ms_median_measured": round(http["latency_ms_median"], 1),
                        "latency_ms_last_measured": round(http["latency_ms_last"], 1),
                        "latency_s_median_real_scale_computed": round(
                            http["latency_ms_median"] * SCALE / 1000, 1
                        ),
                        "latency_s_median_one_worker_per_sensor_computed": round(
                            http["latency_ms_median_model"] * SCALE / 1000, 1
                        ),
                        "worker_slots_while_waiting": n,
                    },
                }
            )
        elapsed = time.monotonic() - started
    finally:
        process.terminate()
        process.wait(10)

    result = {
        "benchmark": "BloomImageSensor (deferrable) vs one HttpSensor per image",
        "setup": {
            "time_scale": f"1 benchmark second = {SCALE:g} real seconds",
            "generation_seconds": f"{GENERATION_SECONDS:g}-{GENERATION_SECONDS + GENERATION_JITTER:g}",
            "http_poke_interval_seconds": POKE_INTERVAL,
            "emulator": "subprocess on 127.0.0.1, rate limit off",
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "elapsed_seconds": round(elapsed, 1),
        },
        "measured": [
            "requests of both sensors (emulator counters)",
            "deferrable latency: last terminal_at -> trigger event",
            "HttpSensor latency in the compressed run",
        ],
        "computed": [
            "HttpSensor latency at real scale (compressed latency x 10)",
            "HttpSensor requests/latency with one worker per sensor, from the same finish times "
            "(the measured run shares one process between all sensors, which stretches its pokes at N=500)",
            "worker slots (Airflow execution model: a deferred task holds none; a poking sensor holds one)",
        ],
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\n(wrote {RESULTS.relative_to(ROOT)}; {elapsed:.0f} s)")


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| images | sensor | requests | median wait after an image is done | worker slots while waiting |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        d, h = row["deferrable"], row["http_sensor"]
        requests = "/".join(str(r) for r in sorted(set(d["requests_per_run"])))
        lines.append(
            f"| {row['images']} | BloomImageSensor, deferrable | {requests} "
            f"| {d['latency_ms_median']:.0f} ms (measured, last image -> event) | 0 |"
        )
        lines.append(
            f"| {row['images']} | {h['sensors']} x HttpSensor, poke every 10 s "
            f"| {h['requests']} measured, {h['requests_one_worker_per_sensor_computed']} computed "
            f"| {h['latency_s_median_real_scale_computed']:.1f} s measured, "
            f"{h['latency_s_median_one_worker_per_sensor_computed']:.1f} s computed "
            f"| {h['worker_slots_while_waiting']} |"
        )
    lines += [
        "",
        "HttpSensor figures come from a 10x time-compressed run (images done 2-3 s after creation,",
        "a poke every 1 s); its latency is per image and scaled x10. 'computed' = the same finish times",
        "with one worker per sensor (the measured run shares one process between all sensors).",
        "Worker slots follow from Airflow's execution model (a deferred task holds none), not measured.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
