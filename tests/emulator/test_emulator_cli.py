"""``python -m airflow_provider_bloom.emulator``: serves, logs one safe line per request, stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import httpx

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from tests.helpers import free_port


def test_cli_serves_logs_and_stops_with_waits_in_flight() -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "airflow_provider_bloom.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--generation-seconds",
        "120",
        "--rate-limit",
        "0",
        "--envelope",
        "nested",
        "--credits",
        "5",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    key = "bloom_sk_cli_secret_value"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        headers = {"x-api-key": key}
        assert httpx.get(base + "/credits", headers=headers).json() == {
            "data": {"balance": 5, "unlimited": False}
        }
        assert "error" in httpx.get(base + "/account").json()  # --envelope nested
        created = httpx.post(
            base + "/images/generations",
            json={"prompt": "p", "brandSessionId": DEFAULT_BRAND_ID},
            headers=headers,
        )
        (image_id,) = created.json()["data"]["ids"]
        answers: list[int] = []

        def wait() -> None:
            url = f"{base}/images/{image_id}?wait=true&timeout=295"
            answers.append(httpx.get(url, headers=headers, timeout=60).status_code)

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        assert time.monotonic() - started < 2.5
        waiter.join(5)
        assert answers == [200]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.stdout.read() if process.stdout else ""
    assert f"http://127.0.0.1:{port}/api/v1" in output
    assert "GET /api/v1/credits 200 " in output and "POST /api/v1/images/generations 202 " in output
    assert f"GET /api/v1/images/{image_id} 200 " in output
    assert key not in output and "timeout=295" not in output
    assert 'HTTP/1.1" 200' not in output  # uvicorn's access log (which prints query strings) is off
