"""Run every benchmark (loopback only, each bounded in time) and print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "bench_import.py",
    "bench_emulator.py",
    "bench_sensor.py",
    "bench_hub.py",
    "bench_trigger_burst.py",
    "bench_batch.py",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n## {name}\n", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed or missed a target: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
