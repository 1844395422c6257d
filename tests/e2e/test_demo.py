"""``make demo`` (scripts/demo.py) as a user runs it: a table, image files, and nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from tests.e2e.stack import REPO, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

DEMO = REPO / "scripts" / "demo.py"


def demo_env(**extra: str) -> dict[str, str]:
    """The user's shell: no Airflow or Bloom settings of the test session leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BLOOM_", "PYTEST_"))}
    return {**env, **extra}


def test_demo_runs_against_bloom_when_a_key_is_set(bloom_emulator, tmp_path: Path) -> None:
    """With BLOOM_API_KEY the demo starts no emulator and uses the given Bloom (here: one on loopback)."""
    key = "bloom_sk_demo_secret_5b0e1c7d9a"
    env = demo_env(BLOOM_API_KEY=key, BLOOM_BRAND_ID=DEFAULT_BRAND_ID, BLOOM_BASE_URL=bloom_emulator.base_url)
    done = subprocess.run(
        [sys.executable, str(DEMO), "--output", str(tmp_path / "output")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert key not in done.stdout + done.stderr
    assert f"Bloom at {bloom_emulator.base_url}" in done.stdout and "spends Bloom credits" in done.stdout
    table = done.stdout[done.stdout.index("prompt") :].splitlines()
    assert table[0].split()[:4] == ["prompt", "channel", "image", "id"]
    rows = [line for line in table[2:] if "completed" in line]
    assert len(rows) == 12
    files = sorted((tmp_path / "output").rglob("*.png"))
    assert len(files) == 12 and all(
        f.name.split("-", 1)[1].removesuffix(".png") in done.stdout for f in files
    )
    assert bloom_emulator.requests()["by_key"]  # the requests came with the user's key
    assert bloom_emulator.requests()["paid_posts"] == 12 + 4 + 3
    # The run's credits, from its credits_report task: 10 2K + 2 4K generations, 4 2K resizes, 3 cut-outs.
    assert "Credits spent by this run: 21 (generate 14, remove_background 3, resize 4)." in done.stdout
    assert "a drop of 21, as computed." in done.stdout


def test_demo_refuses_a_key_without_a_brand_and_never_prints_the_key(tmp_path: Path) -> None:
    key = "bloom_sk_demo_secret_without_brand"
    done = subprocess.run(
        [sys.executable, str(DEMO)],
        env=demo_env(BLOOM_API_KEY=key),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "BLOOM_BRAND_ID" in done.stderr and key not in done.stdout + done.stderr
    assert not (tmp_path / "output").exists()


def running_pipeline(parent: psutil.Process) -> list[psutil.Process] | None:
    """All of the demo's descendants, once its dag.test() child is among them."""
    kids = parent.children(recursive=True)
    try:
        started = any("--child" in kid.cmdline() for kid in kids)
    except psutil.Error:
        return None
    return kids if started else None


def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, str(DEMO), "--output", str(tmp_path / "output")],
        env=demo_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    parent = psutil.Process(demo.pid)
    try:
        # Wait until the pipeline's dag.test() child runs beside the emulator.
        children = wait_until("the demo to start the pipeline", lambda: running_pipeline(parent), 120, 0.2)
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 130, output
    assert "Interrupted (SIGINT)" in output
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == [], f"still running after Ctrl-C: {[p.cmdline() for p in alive]}"
