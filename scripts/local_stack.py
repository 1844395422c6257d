"""Processes on loopback for ``make demo`` and the end-to-end test: the emulator and child processes.

Each child runs in its own session (process group) with its output in a log file, so stopping it
stops everything it started, and a Ctrl-C in the terminal reaches only the parent, which then cleans up.
On Linux a child also gets SIGTERM if the parent dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

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

    def stop(self, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the group, SIGKILL it after ``grace`` s (also children outliving the leader)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(sig)
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


#: Installs Debian's redis-server and postgresql where missing (CI runs it through the test's setup).
INSTALL_SYSTEM_DEPS = REPO / "scripts" / "install_system_deps.sh"


def system_binary(name: str) -> str | None:
    """``name`` on PATH, else in Debian's versioned PostgreSQL folder (not on PATH there), newest first."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]), reverse=True
    )
    return candidates[0] if candidates else None


def ensure_system_deps() -> None:
    """Install Redis and PostgreSQL with the project's script when one of them is missing."""
    if system_binary("redis-server") and system_binary("initdb") and system_binary("postgres"):
        return
    done = subprocess.run(["bash", str(INSTALL_SYSTEM_DEPS)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        raise RuntimeError(f"{INSTALL_SYSTEM_DEPS.name} failed:\n{output}")


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def start_redis(log_dir: Path, workdir: Path) -> tuple[ManagedProcess, str]:
    """A throwaway Redis on a free loopback port (no persistence); returns it and its broker URL."""
    redis_server = system_binary("redis-server")
    if redis_server is None:
        raise RuntimeError(f"redis-server is not installed (run {INSTALL_SYSTEM_DEPS})")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [redis_server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir)]
    argv += ["--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"]
    process = ManagedProcess("redis", argv, os.environ, log_dir).start()

    def up() -> bool:
        if not process.alive:
            raise RuntimeError(f"redis-server exited:\n{process.tail()}")
        return _redis_ping(port)

    try:
        wait_until("Redis to answer PING", up, 30, interval=0.1)
    except BaseException:
        process.stop()
        raise
    return process, f"redis://127.0.0.1:{port}/0"


class PostgresCluster:
    """A throwaway PostgreSQL cluster: initdb in a temporary folder, one server on a free loopback port.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user (which
    Debian's package creates) and its programs run as that user through ``setpriv``. The data folder
    lives outside any folder only root can enter, and ``stop()`` removes it. Durability is switched off
    (fsync, synchronous_commit, full_page_writes): the data is thrown away after the run anyway.
    """

    def __init__(self, log_dir: Path, database: str = "airflow", user: str = "airflow") -> None:
        self.log_dir = log_dir
        self.database = database
        self.user = user
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self.root: Path | None = None
        self.process: ManagedProcess | None = None
        self._owner: pwd.struct_passwd | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database (psycopg2 driver)."""
        return (
            f"postgresql+psycopg2://{self.user}:{quote(self.password, safe='')}"
            f"@127.0.0.1:{self.port}/{self.database}"
        )

    @property
    def celery_result_backend(self) -> str:
        """The same database as Celery's result backend: ``db+`` and the SQLAlchemy URL, driver named
        (SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, which Airflow does not install)."""
        return "db+" + self.url

    def _as_owner(self, argv: list[str]) -> list[str]:
        if self._owner is None:
            return argv
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        uid, gid = str(self._owner.pw_uid), str(self._owner.pw_gid)
        # Changing credentials clears the parent-death signal _die_with_parent set: --pdeathsig sets it again.
        return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--pdeathsig=TERM", "--", *argv]

    def start(self, timeout: float = 60) -> PostgresCluster:
        initdb, postgres = system_binary("initdb"), system_binary("postgres")
        if initdb is None or postgres is None:
            raise RuntimeError(f"PostgreSQL is not installed (run {INSTALL_SYSTEM_DEPS})")
        if os.geteuid() == 0:
            self._owner = pwd.getpwnam("postgres")  # created by Debian's postgresql package
        self.root = Path(tempfile.mkdtemp(prefix="bloom-e2e-pg-"))
        data, sockets, pwfile = self.root / "data", self.root / "sockets", self.root / "pwfile"
        sockets.mkdir()
        pwfile.write_text(self.password + "\n")
        if self._owner is not None:
            for path in (self.root, sockets, pwfile):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        init = self._as_owner(
            [initdb, "-D", str(data), "-U", self.user, f"--pwfile={pwfile}", "--auth=scram-sha-256"]
            + ["-E", "UTF8", "--locale=C", "--no-sync"]
        )
        done = subprocess.run(init, capture_output=True, text=True, timeout=120, check=False)
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(sockets),
            "max_connections": "200",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [postgres, "-D", str(data)] + [f"-c{k}={v}" for k, v in settings.items()]
        self.process = ManagedProcess("postgres", self._as_owner(argv), os.environ, self.log_dir).start()
        wait_until("PostgreSQL to accept connections", self._create_database, timeout, interval=0.2)
        return self

    def connect(self, database: str | None = None) -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
            connect_timeout=5,
        )

    def _create_database(self) -> bool:
        import psycopg2

        assert self.process is not None
        if not self.process.alive:
            raise RuntimeError(f"postgres exited:\n{self.process.tail()}")
        try:
            connection = self.connect("postgres")
        except psycopg2.OperationalError:
            return False
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            connection.close()
        return True

    def stop(self) -> None:
        """Stop the server (fast shutdown, SIGKILL after a grace time) and delete the cluster."""
        if self.process is not None:
            self.process.stop(grace=10, sig=signal.SIGINT)  # SIGINT = fast shutdown: clients are cut off
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
