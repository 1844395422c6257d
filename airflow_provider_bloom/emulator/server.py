"""Serve the emulator with uvicorn: in a background thread (:class:`EmulatorServer`) or blocking.

The uvicorn protocol class used here puts the connection's transport into each ASGI scope
so that fault injection can really cut a connection (see :mod:`faults`), and the server
wakes every long-poll at shutdown so stopping takes well under two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from airflow_provider_bloom.emulator.app import create_app
from airflow_provider_bloom.emulator.client import EmulatorClient
from airflow_provider_bloom.emulator.config import EmulatorConfig
from airflow_provider_bloom.emulator.faults import TRANSPORT_SCOPE_KEY
from airflow_provider_bloom.emulator.runtime import Emulator

GRACEFUL_SHUTDOWN_SECONDS = 2


class _TransportInScope:
    """Wraps the app a uvicorn protocol calls, adding the connection's transport to the scope."""

    def __init__(self, app: ASGIApp, protocol: asyncio.Protocol) -> None:
        self.app = app
        self.protocol = protocol

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[TRANSPORT_SCOPE_KEY] = getattr(self.protocol, "transport", None)
        await self.app(scope, receive, send)


def _protocol_class() -> type[asyncio.Protocol]:
    base: type[Any]
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # pragma: no cover - httptools is optional
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class CuttableProtocol(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            inner: ASGIApp = getattr(self, "app")  # noqa: B009 - set by the base class
            self.app = _TransportInScope(inner, self)

    return CuttableProtocol


class _UvicornServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, emulator: Emulator) -> None:
        super().__init__(config)
        self.emulator = emulator

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Answer every long-poll now instead of waiting up to 295 s for it.
        self.emulator.hub.close()
        await super().shutdown(sockets)


def uvicorn_config(app: FastAPI, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_protocol_class(),
        access_log=False,  # it would print query strings; the emulator logs its own line
        date_header=False,  # the middleware sends Date from the emulated clock
        log_config=None,  # leave the host process' logging alone
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        timeout_keep_alive=30,
        backlog=4096,
    )


def serve(
    config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8787, log_level: str = "info"
) -> None:
    """Serve until SIGINT/SIGTERM (blocking)."""
    app = create_app(config)
    _UvicornServer(uvicorn_config(app, host, port, log_level), app.state.emulator).run()


class EmulatorServer(EmulatorClient):
    """An emulator served by uvicorn in a daemon thread, with the admin helpers of :class:`EmulatorClient`.

    ``port=0`` picks a free port. Use as a context manager or call :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self.log_level = log_level
        self.app: FastAPI | None = None
        self._server: _UvicornServer | None = None
        self._thread: threading.Thread | None = None
        super().__init__(f"http://{host}:{port}")

    @property
    def root_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def emulator(self) -> Emulator:
        """The in-process state (not thread-safe: prefer the HTTP admin helpers)."""
        if self.app is None:
            raise RuntimeError("the emulator is not started")
        emulator: Emulator = self.app.state.emulator
        return emulator

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self.app = create_app(self.config)
        self._server = _UvicornServer(
            uvicorn_config(self.app, self.host, self.port, self.log_level), self.emulator
        )
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"bloom-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError("the Bloom emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; in-flight long-polls answer at once with the current state."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None
        self.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
