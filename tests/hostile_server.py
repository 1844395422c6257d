"""A small scripted HTTP server on loopback that answers what a test tells it to.

For answers the emulator cannot produce (a 3xx or a malformed success to a paid
POST, an echoed key, a gzip body that lies): each request takes the next scripted
answer (the last one repeats) and is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Send the body in pieces of this size, sleeping ``dribble_seconds`` between them.
    chunk: int | None = None
    dribble_seconds: float = 0.0

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def json_answer(status: int, body: Any, **headers: str) -> Answer:
    return Answer(status, body, {"Content-Type": "application/json", **headers})


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HostileServer:
    def __init__(self) -> None:
        self.answers: list[Answer] = [Answer()]
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                    answer = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                content = answer.encoded()
                self.send_response(answer.status)
                headers = {"Content-Length": str(len(content)), **answer.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if answer.chunk is None:
                    self.wfile.write(content)
                    return
                try:
                    for start in range(0, len(content), answer.chunk):
                        self.wfile.write(content[start : start + answer.chunk])
                        self.wfile.flush()
                        time.sleep(answer.dribble_seconds)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up: that is what a test wanted

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        return self.root + "/api/v1"

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self.answers = list(answers)
            self.seen.clear()

    def start(self) -> HostileServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def hostile_server() -> Iterator[HostileServer]:
    server = HostileServer().start()
    try:
        yield server
    finally:
        server.stop()
