"""A server that serves Bloom's API at its root, reached with the connection extra ``api_path`` = ``/``.

Two such servers, as users meet them: Stoplight Prism mocking Bloom's own OpenAPI document
(``prism mock openapi.json`` serves ``/images``, not ``/api/v1/images``), installed from the npm registry
into a cache outside the checkout; and a gateway on loopback that serves the API at its root and passes
each request on to the emulator's ``/api/v1``, so that what reached Bloom is counted.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlparse

import pytest

from airflow_provider_bloom.client.spec import load_spec
from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.exceptions import BloomInputError
from tests.helpers import free_port, serving, use_connection

PRISM_VERSION = "5.16.0"
PRISM_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "airflow-provider-bloom"


# -- a gateway serving Bloom's API at its root ----------------------------------------------------------


class _Gateway(BaseHTTPRequestHandler):
    """Serves ``/<operation path>`` by passing the request on to ``<upstream>/api/v1/<operation path>``."""

    upstream: tuple[str, int]
    seen: list[str]

    def _forward(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "connection"}}
        upstream = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            upstream.request(self.command, "/api/v1" + self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def gateway(bloom_emulator) -> Iterator[tuple[str, list[str]]]:
    parsed = urlparse(bloom_emulator.root_url)
    seen: list[str] = []
    handler = type("Gateway", (_Gateway,), {"upstream": (parsed.hostname, parsed.port), "seen": seen})
    with serving(handler) as url:
        yield url, seen


def test_without_api_path_a_root_served_gateway_says_what_to_set(gateway, monkeypatch):
    url, _ = gateway
    ok, message = use_connection(monkeypatch, url).test_connection()
    assert not ok
    assert "NOT_FOUND" in message and "set the extra api_path to /" in message


@pytest.mark.parametrize("api_path", ["/", ""])
def test_a_root_served_gateway_is_reached_with_api_path(bloom_emulator, gateway, monkeypatch, api_path):
    url, seen = gateway
    hook = use_connection(monkeypatch, url, api_path=api_path, brand_session_id=DEFAULT_BRAND_ID)
    assert hook.settings.base_url == url
    ok, message = hook.test_connection()
    assert ok, message
    ids = hook.generate_images("a kite over the dunes")["ids"]
    (image,) = hook.wait_for_images(ids, timeout=30)
    assert image["status"] == "completed"
    assert "GET /account" in seen and "POST /images/generations" in seen  # at the root, not /api/v1
    assert bloom_emulator.requests()["paid_posts"] == 1


async def test_the_async_client_of_the_triggers_uses_api_path_too(bloom_emulator, gateway, monkeypatch):
    url, seen = gateway
    hook = use_connection(monkeypatch, url, api_path="/")
    client = await hook.aget_client()
    try:
        account = await client.get_account()
    finally:
        await client.aclose()
    assert account["email"] == "dev@emulator.local"
    assert seen == ["GET /account"]


@pytest.mark.parametrize(
    ("api_path", "expected"),
    [(None, "/api/v1"), ("/", ""), ("", ""), ("api/v2/", "/api/v2"), ("/bloom/api/v1", "/bloom/api/v1")],
)
def test_api_path_is_added_to_a_base_url_without_path(monkeypatch, api_path, expected):
    hook = use_connection(monkeypatch, "https://gateway.example", api_path=api_path)
    assert hook.settings.base_url == "https://gateway.example" + expected


def test_a_base_url_with_a_path_is_used_as_typed(monkeypatch):
    hook = use_connection(monkeypatch, "https://gateway.example/bloom", api_path="/")
    assert hook.settings.base_url == "https://gateway.example/bloom"


@pytest.mark.parametrize("bad", ["https://x.example/api", "/api?v=1", "/api v1", "/api#x", 3])
def test_a_bad_api_path_is_named_before_anything_is_sent(monkeypatch, bad):
    with pytest.raises(BloomInputError, match="api_path"):
        use_connection(monkeypatch, "https://gateway.example", api_path=bad).settings  # noqa: B018


# -- Stoplight Prism mocking Bloom's own spec ------------------------------------------------------------


def _prism_binary() -> Path:
    """Prism as installed by scripts/install_prism.sh (run by `make test` and `make test-fast`)."""
    binary = PRISM_HOME / f"prism-{PRISM_VERSION}" / "node_modules" / ".bin" / "prism"
    assert binary.exists(), f"Stoplight Prism is not installed at {binary}: run bash scripts/install_prism.sh"
    return binary


@pytest.fixture(scope="module")
def prism(tmp_path_factory) -> Iterator[str]:
    binary = _prism_binary()
    spec = tmp_path_factory.mktemp("prism") / "openapi.json"
    spec.write_text(json.dumps(load_spec()))  # Bloom's document, as bundled in the package
    port = free_port()
    log = spec.with_name("prism.log")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(binary), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "Prism is listening" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=10)


def test_prism_as_a_new_user_types_it_answers_404(prism, monkeypatch):
    ok, message = use_connection(monkeypatch, prism).test_connection()
    assert not ok and "404" in message and "api_path" in message


def test_prism_mocking_blooms_spec_is_reached_with_api_path(prism, monkeypatch):
    hook = use_connection(monkeypatch, prism, api_path="/", brand_session_id=DEFAULT_BRAND_ID)
    ok, message = hook.test_connection()
    assert ok, message
    started = hook.generate_images("a kite over the dunes", aspect_ratio="16:9")
    assert started["ids"]  # Prism's answer passed the client's checks against the spec
    assert hook.get_credits()["balance"] is not None
    assert hook.list_images(ids=started["ids"]) is not None
