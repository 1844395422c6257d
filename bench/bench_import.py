"""Benchmark: what importing our operators and sensors adds to a DAG file's parse time.

Run: ``.venv/bin/python bench/bench_import.py`` (about 20 s, nothing leaves the machine). A DAG file
imports ``airflow.sdk`` anyway; what the provider adds on top is what every parse of every DAG file
that uses it pays. Each run is a fresh ``python`` process (nothing cached in memory; the ``.pyc``
files written by a first, uncounted run, as in a deployment), alternating two commands:

* **baseline** -- ``import airflow.sdk``;
* **provider** -- ``import airflow.sdk``, then every operator and sensor module of the provider.

Inside the provider process the imports after ``airflow.sdk`` are timed with ``perf_counter`` (the
figure the target is about: the ms our modules add); both processes are also timed whole, from
outside, and the difference of their medians is printed beside it (noisier on a shared machine).
The provider process also reports whether ``requests``, our HTTP transports or Airflow's trigger
base got imported: they should load only when a task runs or defers.

Target: the median added import time is at most 30 ms. Writes ``bench/results/import.json`` and
prints a markdown table. Exits 1 if the target is missed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "15"))
TARGET_MS = 30.0
#: Modules a DAG file imports to use the provider's operators and sensors.
MODULES = [
    "airflow_provider_bloom.operators.images",
    "airflow_provider_bloom.operators.library",
    "airflow_provider_bloom.operators.brands",
    "airflow_provider_bloom.operators.download",
    "airflow_provider_bloom.operators.credits",
    "airflow_provider_bloom.sensors.images",
    "airflow_provider_bloom.sensors.brands",
    "airflow_provider_bloom.sensors.credits",
]
#: Modules that must not be loaded by a DAG file's imports (they load when a task runs or defers).
HEAVY = ["requests", "urllib3", "airflow_provider_bloom.client.transport", "airflow.triggers.base"]

BASELINE = "import airflow.sdk"
PROVIDER = """
import json, sys, time
import airflow.sdk
start = time.perf_counter()
for name in {modules!r}:
    __import__(name)
added = (time.perf_counter() - start) * 1000
print(json.dumps({{"added_ms": added, "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _run(code: str) -> tuple[float, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    # A deployment parses DAG files with the modules' bytecode cached (Airflow writes it): so does this.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT
    )
    return (time.perf_counter() - start) * 1000, done.stdout


def main() -> int:
    modules = [m for m in MODULES if importlib.util.find_spec(m) is not None]
    provider = PROVIDER.format(modules=modules, heavy=HEAVY)
    _run(BASELINE), _run(provider)  # warm the .pyc files and the page cache
    baseline_ms: list[float] = []
    provider_ms: list[float] = []
    added_ms: list[float] = []
    loaded: set[str] = set()
    for _ in range(RUNS):
        baseline_ms.append(_run(BASELINE)[0])
        wall, out = _run(provider)
        provider_ms.append(wall)
        answer = json.loads(out.strip().splitlines()[-1])
        added_ms.append(answer["added_ms"])
        loaded.update(answer["loaded"])
    result: dict[str, Any] = {
        "runs": RUNS,
        "modules": modules,
        "added_ms_median": round(statistics.median(added_ms), 1),
        "added_ms_min": round(min(added_ms), 1),
        "added_ms_max": round(max(added_ms), 1),
        "baseline_process_ms_median": round(statistics.median(baseline_ms), 1),
        "provider_process_ms_median": round(statistics.median(provider_ms), 1),
        "heavy_modules_loaded": sorted(loaded),
        "target_ms": TARGET_MS,
    }
    result["process_difference_ms"] = round(
        result["provider_process_ms_median"] - result["baseline_process_ms_median"], 1
    )
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "import.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    print()
    print("| measure | median | min | max |")
    print("|---|---:|---:|---:|")
    print(
        f"| added by our operators + sensors (in process) | {result['added_ms_median']} ms "
        f"| {result['added_ms_min']} ms | {result['added_ms_max']} ms |"
    )
    print(f"| `import airflow.sdk` (whole process) | {result['baseline_process_ms_median']} ms | | |")
    print(f"| `import airflow.sdk` + ours (whole process) | {result['provider_process_ms_median']} ms | | |")
    print(f"\nloaded at import that should not be: {', '.join(result['heavy_modules_loaded']) or 'none'}")
    missed = result["added_ms_median"] > TARGET_MS or result["heavy_modules_loaded"]
    if missed:
        print(f"\nmissed the target: <= {TARGET_MS:g} ms added and no HTTP stack at import")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
