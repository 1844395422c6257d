"""The ASGI layer around the routes: routing by the spec, counting, faults, response checks, logging.

Pure ASGI (no ``BaseHTTPMiddleware``) so it can hold long-polls cheaply, stream the
response untouched and, for faults, really break the connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from email.utils import formatdate

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_provider_bloom.client.spec import OAUTH_TOKEN_PATH
from airflow_provider_bloom.emulator import spec
from airflow_provider_bloom.emulator.auth import credential
from airflow_provider_bloom.emulator.errors import EmulatorError, dumps, unwrap
from airflow_provider_bloom.emulator.faults import FaultRule, close_connection
from airflow_provider_bloom.emulator.observe import Violation, key_fingerprint, log_request, logger
from airflow_provider_bloom.emulator.runtime import FILE_DOWNLOAD, FILE_REDIRECT, OAUTH_TOKEN, Emulator

OPERATION_SCOPE_KEY = "bloom.emulator.operation"
CUT = "cut"


@dataclass
class _Captured:
    """What the inner app answered, for counting, checking and fault surgery."""

    forward: Send | None
    keep_body: bool
    start: Message | None = None
    chunks: list[bytes] = field(default_factory=list)

    @property
    def status(self) -> int:
        return int(self.start["status"]) if self.start is not None else 500

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: bytes) -> str:
        assert self.start is not None
        for key, value in self.start.get("headers", []):
            if key.lower() == name:
                return str(value.decode("latin-1"))
        return ""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body" and self.keep_body:
            self.chunks.append(message.get("body", b""))
        if self.forward is not None:
            await self.forward(message)


def response_problem(
    op: spec.OperationSpec, status: int, content_type: str, body: bytes, *, injected: bool
) -> str | None:
    """Why this response breaks the spec, or ``None`` when it conforms.

    Documented gaps that are not violations: a 400 ``BAD_REQUEST`` on an operation whose
    spec declares no 400 (Bloom rejects invalid input on every operation), and injected
    fault statuses the operation does not declare.
    """
    validator = op.response_validator(status)
    if validator is None and injected:
        return None
    if not content_type.startswith("application/json"):
        return f"content type {content_type!r} is not application/json"
    try:
        payload = json.loads(body)
    except ValueError as exc:
        return f"body is not JSON: {exc}"
    if status >= 400:
        payload = unwrap(payload)
        if isinstance(payload, dict) and "defined" not in payload:  # nested envelope: restore the flag
            payload = {"defined": op.is_defined(status, str(payload.get("code"))), **payload}
    if validator is None:
        if status == 400 and isinstance(payload, dict) and payload.get("code") == "BAD_REQUEST":
            return spec.first_error(spec.GENERIC_ERROR_VALIDATOR, payload)
        return f"status {status} is not declared for {op.operation_id}"
    return spec.first_error(validator, payload)


def _corrupt(body: bytes) -> bytes:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "data" in payload:
        return dumps({"data": {}})
    return dumps({"corrupted": True})


class EmulatorMiddleware:
    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        outcome: int | str = "error"
        send = self._dated(send)
        try:
            outcome = await self._dispatch(scope, receive, send)
        finally:
            log_request(scope["method"], scope["path"], outcome, (time.perf_counter() - started) * 1000)

    def _dated(self, send: Send) -> Send:
        """Add Bloom's ``Date`` header (RFC 9110, whole seconds) from the emulated clock to every answer."""
        clock = self.emulator.store.clock

        async def dated_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(key.lower() == b"date" for key, _ in headers):
                    headers.append((b"date", formatdate(clock(), usegmt=True).encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        return dated_send

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> int | str:
        method, path = scope["method"], scope["path"]
        op: spec.OperationSpec | None = None
        if path == spec.API_PREFIX or path.startswith(spec.API_PREFIX + "/"):
            found = spec.match(method, path[len(spec.API_PREFIX) :])
            if found is None:
                return await self._send_error(send, EmulatorError(404, "NOT_FOUND", "No such API path"), None)
            if found.operation is None:
                allow = ", ".join(found.allowed)
                if method == "OPTIONS":
                    await _send_raw(send, 204, b"", {"allow": allow})
                    return 204
                error = EmulatorError(405, "METHOD_NOT_SUPPORTED", f"Use {allow}", headers={"allow": allow})
                return await self._send_error(send, error, None)
            op = found.operation
            scope[OPERATION_SCOPE_KEY] = op
            name = op.operation_id
        elif method == "GET" and path.startswith("/img/"):
            name = FILE_REDIRECT
        elif method == "GET" and path.startswith("/_files/"):
            name = FILE_DOWNLOAD
        elif path == OAUTH_TOKEN_PATH:
            name = OAUTH_TOKEN
        else:  # admin endpoints and anything unknown: not counted, no faults
            captured = _Captured(send, keep_body=False)
            await self.app(scope, receive, captured.send)
            return captured.status
        self._count(scope, name, op)
        fault = self.emulator.faults.take(name)
        if fault is None:
            return await self._run(scope, receive, send, name, op)
        return await self._run_with_fault(scope, receive, send, name, op, fault)

    def _count(self, scope: Scope, name: str, op: spec.OperationSpec | None) -> None:
        headers = Headers(scope=scope)
        key = credential(headers)
        counters = self.emulator.counters
        signed = op is not None and op.signed
        counters.record(
            name, key_fingerprint(key) if key and not signed else None, op is not None and op.paid
        )
        has_credentials = "x-api-key" in headers or "authorization" in headers
        if name == FILE_DOWNLOAD:
            counters.files.record(has_credentials)
        elif name == FILE_REDIRECT:
            counters.redirects.record(has_credentials)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, name: str, op: spec.OperationSpec | None
    ) -> int:
        check = op is not None and self.emulator.config.validate_responses
        captured = _Captured(send, keep_body=check)
        await self.app(scope, receive, captured.send)
        self._finish(scope, name, op, captured, injected=False)
        return captured.status

    async def _run_with_fault(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str,
        op: spec.OperationSpec | None,
        fault: FaultRule,
    ) -> int | str:
        if fault.kind == "status":
            assert fault.status is not None
            error = self.emulator.fault_error(fault.status, op, fault.retry_after)
            captured = _Captured(send, keep_body=True)
            await self._send_error(captured.send, error, op)
            self._finish(scope, name, op, captured, injected=True)
            return captured.status
        if fault.kind == "delay":
            # The request is read first, so it is handled after the delay even if the client has
            # given up meanwhile (a read timeout): Bloom keeps working on what it received.
            replay = await _buffered(receive)
            await asyncio.sleep(fault.delay_seconds or 0.0)
            return await self._run(scope, replay, send, name, op)
        if fault.kind == "cut_before":
            await close_connection(scope, receive, send)
            self.emulator.counters.record_outcome(name, CUT, paid_effect=False)
            return CUT
        held = _Captured(None, keep_body=True)
        await self.app(scope, receive, held.send)
        assert held.start is not None
        if fault.kind == "status_after":
            assert fault.status is not None
            error = self.emulator.fault_error(fault.status, op, fault.retry_after)
            await self._send_error(send, error, op)
            self.emulator.counters.record_outcome(
                name, fault.status, paid_effect=_paid_effect(op, held.status)
            )
            return fault.status
        if fault.kind == "cut_after":
            await close_connection(scope, receive, send)
            self.emulator.counters.record_outcome(name, CUT, paid_effect=_paid_effect(op, held.status))
            return CUT
        body = held.body
        if fault.kind == "truncate":
            self.emulator.counters.record_outcome(
                name, held.status, paid_effect=_paid_effect(op, held.status)
            )
            await close_connection(scope, receive, send, held.start, body[: len(body) // 2])
            return held.status
        # corrupt: a well-formed HTTP answer whose body breaks the spec
        corrupted = _Captured(send, keep_body=True)
        content_type = held.header(b"content-type") or "application/json"
        await _send_raw(corrupted.send, held.status, _corrupt(body), {"content-type": content_type})
        self._finish(scope, name, op, corrupted, injected=False)
        return held.status

    def _finish(
        self, scope: Scope, name: str, op: spec.OperationSpec | None, captured: _Captured, injected: bool
    ) -> None:
        status = captured.status
        self.emulator.counters.record_outcome(
            name, status, paid_effect=_paid_effect(op, status) and not injected
        )
        if op is None or not self.emulator.config.validate_responses:
            return
        problem = response_problem(
            op, status, captured.header(b"content-type"), captured.body, injected=injected
        )
        if problem is not None:
            violation = Violation(op.operation_id, scope["method"], scope["path"], status, problem)
            self.emulator.violations.append(violation)
            logger.warning(
                "spec violation: %s %s -> %s: %s", op.operation_id, status, violation.path, problem
            )

    async def _send_error(self, send: Send, error: EmulatorError, op: spec.OperationSpec | None) -> int:
        payload = self.emulator.error_payload(error, op)
        await _send_raw(
            send, error.status, dumps(payload), {"content-type": "application/json", **error.headers}
        )
        return error.status


async def _buffered(receive: Receive) -> Receive:
    """Read the whole request body now; the returned ``receive`` replays it, then reads on."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return replay


def _paid_effect(op: spec.OperationSpec | None, status: int) -> bool:
    return op is not None and op.paid and 200 <= status < 300


async def _send_raw(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw_headers: list[tuple[bytes, bytes]] = [
        (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
    ]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
