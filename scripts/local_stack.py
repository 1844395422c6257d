"""Processes on loopback for ``make demo`` and the end-to-end test: the emulator and child processes.

Each child runs in its own session (process group) with its output in a log file, so stopping it
stops everything it started, and a Ctrl-C in the terminal reaches only the parent, which then cleans up.
On Linux a child also gets SIGTERM if the parent dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx

REPO = Path(__file__).resolve().parents[1]
#: The example DAGs: what the demo, the tests, the end-to-end test and docker-compose.yaml all load.
DAGS_FOLDER = REPO / "dags_examples"
#: The emulator's command-line entry point (docker-compose.yaml's ``bloom-emulator`` service runs it too).
EMULATOR_MODULE = "airflow_provider_bloom.emulator"

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ManagedProcess:
    """A child process in its own session (so its whole group can be signalled) with a log file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # own session; SIGTERM when the parent dies
                cwd=str(REPO),
            )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group at once: no shutdown code runs (a crash)."""
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the group, SIGKILL it after ``grace`` seconds; children that outlive the leader too."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def start_emulator(
    log_dir: Path, *args: str, env: Mapping[str, str] | None = None
) -> tuple[ManagedProcess, str]:
    """The emulator's command-line entry point on a free loopback port; returns it and its root URL."""
    port = free_port()
    argv = [sys.executable, "-m", EMULATOR_MODULE, "--host", "127.0.0.1", "--port", str(port), *args]
    process = ManagedProcess("emulator", argv, env if env is not None else os.environ, log_dir).start()
    root = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if not process.alive:
            raise RuntimeError(f"the Bloom emulator exited:\n{process.tail()}")
        return httpx.get(f"{root}/_emulator/health", timeout=5).status_code == 200

    try:
        wait_until("the Bloom emulator to answer", healthy, 30, interval=0.1)
    except BaseException:
        process.stop()
        raise
    return process, root
