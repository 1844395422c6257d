"""Scripted faults: the next N matching requests fail in a chosen way.

Kinds:

* ``status``: answer ``status`` (429, 500, 502, 503, ...) in Bloom's error envelope, optionally
  with ``Retry-After``; the request has no effect.
* ``delay``: read the request, wait ``delay_seconds``, then handle it normally -- also when the
  client gave up meanwhile (a read timeout), as Bloom keeps working on what it received.
* ``cut_before``: close the connection without any response; the request has no effect.
* ``cut_after``: handle the request (the charge happened, the image exists), then close the
  connection without sending the response.
* ``truncate``: handle the request, send the status line, headers and half of the body, close.
* ``corrupt``: handle the request, then answer a body that breaks the spec (``data`` emptied);
  exists to prove that response validation catches violations.
* ``status_after``: handle the request (the charge happened, the image exists), then answer
  ``status`` (a 500, 502, 503...) in Bloom's error envelope instead of the real answer: a
  gateway or server error after the work was done.

``cut_after``, ``truncate``, ``corrupt`` and ``status_after`` are the ways an answer is lost
after Bloom acted: the counters record them as ``paid_posts_effective``.

Closing really closes the TCP connection: the server's protocol class (see
:mod:`airflow_provider_bloom.emulator.server`) puts the transport into the ASGI scope
under :data:`TRANSPORT_SCOPE_KEY`. Without it (another ASGI server) the fallback sends
the head with a ``Content-Length`` that is never honoured and raises, which servers answer
by closing the connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, Literal

from starlette.types import Message, Receive, Scope, Send

TRANSPORT_SCOPE_KEY = "bloom.emulator.transport"
FAULT_KINDS = ("status", "delay", "cut_before", "cut_after", "truncate", "corrupt", "status_after")
FaultKind = Literal["status", "delay", "cut_before", "cut_after", "truncate", "corrupt", "status_after"]
ANY_OPERATION = "*"


class ConnectionCut(Exception):
    """Raised when the connection could only be broken by failing the ASGI call."""


@dataclass
class FaultRule:
    operation: str
    kind: FaultKind
    count: int = 1
    status: int | None = None
    retry_after: str | None = None
    delay_seconds: float | None = None

    def check(self, known_operations: frozenset[str]) -> None:
        if self.operation != ANY_OPERATION and self.operation not in known_operations:
            raise ValueError(f"unknown operation {self.operation!r}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.kind == "status" and (self.status is None or not 400 <= self.status <= 599):
            raise ValueError("a 'status' fault needs a status between 400 and 599")
        if self.kind == "status_after" and (self.status is None or not 500 <= self.status <= 599):
            raise ValueError("a 'status_after' fault needs a status between 500 and 599")
        if self.kind == "delay" and (self.delay_seconds is None or self.delay_seconds < 0):
            raise ValueError("a 'delay' fault needs delay_seconds >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultBook:
    """Pending faults, consumed first-in first-out per matching request."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        self._rules.append(rule)

    def clear(self) -> None:
        self._rules.clear()

    def pending(self) -> list[dict[str, Any]]:
        return [rule.to_dict() for rule in self._rules]

    def take(self, operation: str) -> FaultRule | None:
        """The fault for this request (one use of the first matching rule), if any."""
        for rule in self._rules:
            if rule.operation in (operation, ANY_OPERATION):
                rule.count -= 1
                if rule.count <= 0:
                    self._rules.remove(rule)
                return rule
        return None


async def _await_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def close_connection(
    scope: Scope, receive: Receive, send: Send, head: Message | None = None, partial_body: bytes = b""
) -> None:
    """Close the client's connection, optionally after a response head and part of its body.

    ``head`` is an ``http.response.start`` message whose ``Content-Length`` promises more than
    ``partial_body``; the client sees a connection closed mid-response.
    """
    transport = scope.get(TRANSPORT_SCOPE_KEY)
    if head is not None:
        await send(head)
        if partial_body:
            await send({"type": "http.response.body", "body": partial_body, "more_body": True})
    if transport is not None:
        if head is None:
            transport.abort()
        else:
            transport.close()  # flushes what was written, then closes
        await asyncio.wait_for(_await_disconnect(receive), timeout=5)
        return
    if head is None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
    raise ConnectionCut("connection cut by an emulator fault")
