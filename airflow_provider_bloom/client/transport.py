"""Bloom API client: two transports around one set of decisions.

Nothing here knows about Airflow. :class:`~airflow_provider_bloom.client.operations.BloomOperations`
declares the 23 operations once; :class:`BloomClient` runs them over ``requests`` and
:class:`AsyncBloomClient` over ``httpx.AsyncClient`` (for triggers). Request building, answer
parsing, redaction, error classification and the retry policy live in
:class:`~airflow_provider_bloom.client.core._ClientCore`; each transport here only sends and reads.

This module also re-exports the client layer's public names (settings, file inputs, prepared
calls) so ``from airflow_provider_bloom.client.transport import ...`` keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

import httpx
import requests
import tenacity
import urllib3.exceptions

from airflow_provider_bloom.client.core import JSON, PreparedCall, _ClientCore, caused_by_tls
from airflow_provider_bloom.client.files import (
    Download,
    FileInput,
    Upload,
    allowed_mimes,
    extension_for,
    read_upload,
    sniff_image_type,
)
from airflow_provider_bloom.client.operations import BloomOperations, CallParts
from airflow_provider_bloom.client.settings import (
    CONNECT_TIMEOUT,
    MAX_REDIRECTS,
    USER_AGENT,
    WAIT_READ_MARGIN,
    ClientSettings,
    same_origin,
)
from airflow_provider_bloom.client.spec import Operation, get_operation
from airflow_provider_bloom.exceptions import (
    BloomAPIError,
    BloomAuthError,
    BloomDownloadError,
    BloomError,
    BloomServerError,
    error_from_response,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

# --------------------------------------------------------------------------- sync transport


def _classify_requests_error(
    core: _ClientCore, op: Operation, exc: requests.RequestException, url: str
) -> BloomError:
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3 MaxRetryError -> the underlying error
    never_sent = isinstance(exc, requests.ConnectTimeout) or (
        isinstance(exc, requests.ConnectionError)
        and type(reason).__name__ in {"NewConnectionError", "NameResolutionError", "ConnectTimeoutError"}
    )
    # An SSLError is raised during the handshake, before any request.
    tls = isinstance(exc, requests.exceptions.SSLError)
    return core.transport_failure(op, url, exc, tls=tls, never_sent=never_sent)


class BloomClient(_ClientCore, BloomOperations[JSON]):
    """Synchronous Bloom client over ``requests``."""

    def __init__(self, settings: ClientSettings, session: requests.Session | None = None) -> None:
        super().__init__(settings)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.trust_env = False  # proxies/netrc from the environment never see the key

    def close(self) -> None:
        self.session.close()

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
            resp = self.session.post(
                self.settings.token_url,
                data=self._token_form(),
                timeout=(CONNECT_TIMEOUT, self.settings.timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
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
            resp = self.session.request(
                **call.request_args(),
                headers=headers,
                timeout=(CONNECT_TIMEOUT, call.read_timeout),
                allow_redirects=False,
            )
            content = resp.content
        except requests.RequestException as exc:
            raise _classify_requests_error(self, call.op, exc, call.url) from exc
        self._observed(resp.status_code, resp.headers, sent)
        return self.interpret(call.op, resp.status_code, resp.headers, content)

    @contextmanager
    def open_download(self, url: str, *, timeout: float | None = None) -> Iterator[Download]:
        """Open an image URL for streaming, following Bloom's redirects; yield the :class:`Download`.

        The credentials go only to the base URL's origin: a hop to any other
        host (a storage bucket, a CDN) is made without them. Transient
        failures before the body starts are retried (downloads are free).
        """
        url = self.absolute_url(url)
        op = get_operation("images.get")

        def open_once() -> requests.Response:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                headers = self._auth_headers() if self.credentials_allowed(current) else {}
                try:
                    resp = self.session.get(
                        current,
                        headers=headers,
                        stream=True,
                        allow_redirects=False,
                        timeout=(CONNECT_TIMEOUT, timeout or self.settings.timeout),
                    )
                except requests.RequestException as exc:
                    raise _classify_requests_error(self, op, exc, current) from exc
                target = self.redirect_target(current, resp.status_code, resp.headers)
                if target is None:
                    break
                resp.close()
                current = target
            else:
                raise BloomServerError(310, None, f"too many redirects from {url}")
            if resp.status_code >= 400:
                try:
                    content = resp.content
                except requests.RequestException as exc:
                    raise _classify_requests_error(self, op, exc, current) from exc
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
            yield Download(resp.url, resp.status_code, resp.headers, partial(_read_raw, resp))
        finally:
            resp.close()


def _read_raw(resp: requests.Response, size: int) -> Iterator[bytes]:
    """The decoded body of a streamed answer; ``read1`` returns what one read brings (``iter_content``
    would block until a whole chunk arrived, however slowly it dribbles in)."""
    while True:
        try:
            data = resp.raw.read1(size, decode_content=True)
        except urllib3.exceptions.DecodeError as exc:
            raise BloomDownloadError(
                f"the server's {resp.headers.get('content-encoding')} body could not be decoded",
                permanent=False,
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise BloomDownloadError(
                f"the download broke off ({type(exc).__name__})", permanent=False
            ) from exc
        if not data:
            return
        yield data


# --------------------------------------------------------------------------- async transport


def _classify_httpx_error(core: _ClientCore, op: Operation, exc: httpx.HTTPError, url: str) -> BloomError:
    tls = isinstance(exc, httpx.ConnectError) and caused_by_tls(exc)
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    return core.transport_failure(op, url, exc, tls=tls, never_sent=never_sent)


class AsyncBloomClient(_ClientCore, BloomOperations[Awaitable[JSON]]):
    """Asynchronous Bloom client over ``httpx.AsyncClient``: safe inside the triggerer's event loop."""

    def __init__(
        self, settings: ClientSettings, client: httpx.AsyncClient | None = None, *, max_connections: int = 100
    ) -> None:
        super().__init__(settings)
        self.http = client or httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
        )

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
            resp = await self.http.post(
                self.settings.token_url,
                data=self._token_form(),
                timeout=httpx.Timeout(self.settings.timeout, connect=CONNECT_TIMEOUT),
            )
        except httpx.HTTPError as exc:
            raise self._token_not_sent() from exc
        self._store_token(resp.status_code, resp.content, resp.headers.get("content-type"))

    def _call(self, operation_id: str, **parts: Unpack[CallParts]) -> Awaitable[JSON]:
        # Checks run now, synchronously, so bad input fails at the call site.
        return self.execute(self.prepare(operation_id, **parts))

    async def execute(self, call: PreparedCall) -> JSON:
        """Send ``call`` under the retry policy; after a 401 on OAuth, once more with a fresh token."""
        try:
            return await tenacity.AsyncRetrying(**self.retry_kwargs())(self._send_once, call)
        except BloomAuthError as exc:
            if not self._refresh_token_after(call, exc):
                raise
        return await tenacity.AsyncRetrying(**self.retry_kwargs())(self._send_once, call)

    async def _send_once(self, call: PreparedCall) -> JSON:
        headers = await self._auth_headers() if call.op.authenticated else {}
        sent = time.monotonic()
        try:
            resp = await self.http.request(
                **call.request_args(),
                headers=headers,
                timeout=httpx.Timeout(call.read_timeout, connect=CONNECT_TIMEOUT),
            )
        except httpx.HTTPError as exc:
            raise _classify_httpx_error(self, call.op, exc, call.url) from exc
        self._observed(resp.status_code, resp.headers, sent)
        return self.interpret(call.op, resp.status_code, resp.headers, resp.content)


__all__ = [
    "CONNECT_TIMEOUT",
    "JSON",
    "MAX_REDIRECTS",
    "USER_AGENT",
    "WAIT_READ_MARGIN",
    "AsyncBloomClient",
    "BloomAPIError",
    "BloomClient",
    "BloomOperations",
    "CallParts",
    "ClientSettings",
    "FileInput",
    "PreparedCall",
    "Upload",
    "allowed_mimes",
    "extension_for",
    "read_upload",
    "same_origin",
    "sniff_image_type",
]
