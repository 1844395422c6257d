"""Bloom API client: one HTTP library (httpx), two thin transports around one set of decisions.

Nothing here knows about Airflow. :class:`~airflow_provider_bloom.client.operations.BloomOperations`
declares the 23 operations once; :class:`BloomClient` runs them over ``httpx.Client`` (workers, the
hook) and :class:`AsyncBloomClient` over ``httpx.AsyncClient`` (the triggerer). Request building,
answer parsing, redaction, error classification and the retry policy live in
:class:`~airflow_provider_bloom.client.core._ClientCore`; what httpx raises is told apart once, by
:func:`_classify`, for both. Each transport here only sends and reads.

Both clients: ``trust_env=False`` (proxies and netrc from the environment never see the key), no
redirect followed on their own (a download follows Bloom's redirect itself, with credentials only
to the base URL's origin), and a connection pool sized by ``max_connections`` (the clients are
thread-safe: the batch operators share one between their threads).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import tenacity

from airflow_provider_bloom.client.core import PreparedCall, _ClientCore, caused_by_tls
from airflow_provider_bloom.client.files import Download
from airflow_provider_bloom.client.operations import JSON, BloomOperations, CallParts
from airflow_provider_bloom.client.settings import CONNECT_TIMEOUT, MAX_REDIRECTS, USER_AGENT, ClientSettings
from airflow_provider_bloom.client.spec import Operation, get_operation
from airflow_provider_bloom.exceptions import (
    BloomAuthError,
    BloomDownloadError,
    BloomError,
    BloomServerError,
    error_from_response,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Connections one client keeps open at most (the hub sizes its own by its long-polls).
DEFAULT_MAX_CONNECTIONS = 100


def _http_options(max_connections: int) -> dict[str, Any]:
    """What both httpx clients are built with."""
    return {
        "headers": {"User-Agent": USER_AGENT},
        "follow_redirects": False,
        "trust_env": False,
        "limits": httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=min(20, max_connections)
        ),
    }


def _timeout(read: float) -> httpx.Timeout:
    return httpx.Timeout(read, connect=CONNECT_TIMEOUT)


def _classify(core: _ClientCore, op: Operation, exc: httpx.HTTPError, url: str) -> BloomError:
    """The error for a request httpx could not complete: refused or unresolved (never sent), a failed
    TLS handshake (never sent, and pointless to repeat), or lost after it went out."""
    tls = isinstance(exc, httpx.ConnectError) and caused_by_tls(exc)
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    return core.transport_failure(op, url, exc, tls=tls, never_sent=never_sent)


def _token_request(core: _ClientCore) -> dict[str, Any]:
    """The OAuth token request, as both clients send it."""
    settings = core.settings
    return {"url": settings.token_url, "data": core._token_form(), "timeout": _timeout(settings.timeout)}


#: The content codings a download accepts, and zlib's window bits for each.
_CODINGS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
ACCEPT_ENCODING = "gzip, deflate"


def _decoded_chunks(resp: httpx.Response, size: int) -> Iterator[bytes]:
    """The decoded body of a streamed answer, in pieces of at most ``size`` bytes as the network brings them.

    Decoded here, ``size`` bytes at a time, rather than by httpx, which inflates a whole network read at
    once: a few kilobytes of gzip can hold gigabytes, and the caller's size cap must see them come in.
    """
    coding = (resp.headers.get("content-encoding") or "identity").strip().lower()
    try:
        if coding == "identity":
            for data in resp.iter_raw():
                for start in range(0, len(data), size):
                    yield data[start : start + size]
            return
        if coding not in _CODINGS:
            raise zlib.error(f"unsupported content coding {coding!r}")
        inflater = zlib.decompressobj(_CODINGS[coding])
        fed = ended = False  # fed: bytes went into this inflater; ended: a whole member came out
        for data in resp.iter_raw():
            while data:
                try:
                    out = inflater.decompress(data, size)
                except zlib.error:
                    if ended:  # what follows a complete member is not another one: ignored, as urllib3 does
                        return
                    if fed or coding != "deflate":
                        raise
                    inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, without zlib's header
                    out = inflater.decompress(data, size)
                fed = True
                if inflater.eof and inflater.unused_data:  # several gzip members: the next starts here
                    data, inflater = inflater.unused_data, zlib.decompressobj(_CODINGS[coding])
                    fed, ended = False, True
                else:
                    data = inflater.unconsumed_tail
                if out:
                    yield out
        if fed and not inflater.eof:
            raise zlib.error("the compressed body ends before its end marker")
    except zlib.error as exc:
        raise BloomDownloadError(
            f"the server's {resp.headers.get('content-encoding')} body could not be decoded", permanent=False
        ) from exc
    except httpx.HTTPError as exc:
        raise BloomDownloadError(f"the download broke off ({type(exc).__name__})", permanent=False) from exc


# --------------------------------------------------------------------------- sync transport


class BloomClient(_ClientCore, BloomOperations[JSON]):
    """Synchronous Bloom client over ``httpx.Client`` (thread-safe)."""

    def __init__(self, settings: ClientSettings, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        super().__init__(settings)
        self.http = httpx.Client(**_http_options(max_connections))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> BloomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _auth_headers(self) -> dict[str, str]:
        if self._needs_token():
            tenacity.Retrying(**self.retry_kwargs())(self._fetch_token)
        return self._current_auth_headers()

    def _fetch_token(self) -> None:
        try:
            resp = self.http.post(**_token_request(self))
        except httpx.HTTPError as exc:
            raise self._token_not_sent() from exc
        self._store_token(resp.status_code, resp.content, resp.headers.get("content-type"))

    def _call(self, operation_id: str, **parts: Unpack[CallParts]) -> JSON:
        return self.execute(self.prepare(operation_id, **parts))

    def execute(self, call: PreparedCall, *, retry: bool = True) -> JSON:
        """Send ``call`` under the retry policy; after a 401 on OAuth, once more with a fresh token.

        ``retry=False``: send it once, for a caller that backs off within its own deadline (a wait).
        """
        try:
            return tenacity.Retrying(**self.retry_kwargs(retry=retry))(self._send_once, call)
        except BloomAuthError as exc:
            if not self._refresh_token_after(call, exc):
                raise
        return tenacity.Retrying(**self.retry_kwargs(retry=retry))(self._send_once, call)

    def _send_once(self, call: PreparedCall) -> JSON:
        headers = self._auth_headers() if call.op.authenticated else {}
        sent = time.monotonic()
        try:
            resp = self.http.request(
                **call.request_args(), headers=headers, timeout=_timeout(call.read_timeout)
            )
        except httpx.HTTPError as exc:
            raise _classify(self, call.op, exc, call.url) from exc
        self._observed(resp.status_code, resp.headers, sent)
        return self.interpret(call.op, resp.status_code, resp.headers, resp.content)

    @contextmanager
    def open_download(self, url: str, *, timeout: float | None = None) -> Iterator[Download]:
        """Open an image URL for streaming, following Bloom's redirects; yield the :class:`Download`.

        The credentials go only to the base URL's origin: a hop to any other
        host (a storage bucket, a CDN) is made without them. Transient
        failures before the body starts are retried (downloads are free).
        """
        url = self.absolute_url(url)
        op = get_operation("images.get")

        def open_once() -> httpx.Response:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                headers = self._auth_headers() if self.credentials_allowed(current) else {}
                request = self.http.build_request(
                    "GET",
                    current,
                    headers={**headers, "Accept-Encoding": ACCEPT_ENCODING},
                    timeout=_timeout(timeout or self.settings.timeout),
                )
                try:
                    resp = self.http.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise _classify(self, op, exc, current) from exc
                target = self.redirect_target(current, resp.status_code, resp.headers)
                if target is None:
                    break
                resp.close()
                current = target
            else:
                raise BloomServerError(310, None, f"too many redirects from {url}")
            if resp.status_code >= 400:
                try:
                    content = resp.read()
                except httpx.HTTPError as exc:
                    raise _classify(self, op, exc, current) from exc
                finally:
                    resp.close()
                raise self.scrubbed(
                    error_from_response(
                        resp.status_code, content, resp.headers.get("content-type"), operation_id="download"
                    )
                )
            return resp

        resp = tenacity.Retrying(**self.retry_kwargs())(open_once)
        try:
            yield Download(str(resp.url), resp.status_code, resp.headers, partial(_decoded_chunks, resp))
        finally:
            resp.close()


# --------------------------------------------------------------------------- async transport


class AsyncBloomClient(_ClientCore, BloomOperations[Awaitable[JSON]]):
    """Asynchronous Bloom client over ``httpx.AsyncClient``: safe inside the triggerer's event loop."""

    def __init__(self, settings: ClientSettings, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        super().__init__(settings)
        self.http = httpx.AsyncClient(**_http_options(max_connections))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncBloomClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _auth_headers(self) -> dict[str, str]:
        if self._needs_token():
            await tenacity.AsyncRetrying(**self.retry_kwargs())(self._fetch_token)
        return self._current_auth_headers()

    async def _fetch_token(self) -> None:
        try:
            resp = await self.http.post(**_token_request(self))
        except httpx.HTTPError as exc:
            raise self._token_not_sent() from exc
        self._store_token(resp.status_code, resp.content, resp.headers.get("content-type"))

    def _call(self, operation_id: str, **parts: Unpack[CallParts]) -> Awaitable[JSON]:
        # Checks run now, synchronously, so bad input fails at the call site.
        return self.execute(self.prepare(operation_id, **parts))

    async def execute(self, call: PreparedCall, *, retry: bool = True) -> JSON:
        """Send ``call`` under the retry policy; after a 401 on OAuth, once more with a fresh token.

        ``retry=False``: send it once, for a caller that backs off within its own deadline (a wait).
        """
        try:
            return await tenacity.AsyncRetrying(**self.retry_kwargs(retry=retry))(self._send_once, call)
        except BloomAuthError as exc:
            if not self._refresh_token_after(call, exc):
                raise
        return await tenacity.AsyncRetrying(**self.retry_kwargs(retry=retry))(self._send_once, call)

    async def _send_once(self, call: PreparedCall) -> JSON:
        headers = await self._auth_headers() if call.op.authenticated else {}
        sent = time.monotonic()
        try:
            resp = await self.http.request(
                **call.request_args(), headers=headers, timeout=_timeout(call.read_timeout)
            )
        except httpx.HTTPError as exc:
            raise _classify(self, call.op, exc, call.url) from exc
        self._observed(resp.status_code, resp.headers, sent)
        return self.interpret(call.op, resp.status_code, resp.headers, resp.content)


__all__ = ["DEFAULT_MAX_CONNECTIONS", "AsyncBloomClient", "BloomClient"]
