"""Bloom API client: one definition of requests, checks, errors and retries; two transports.

Nothing here knows about Airflow. :class:`BloomOperations` declares the 23
operations once; :class:`BloomClient` runs them over ``requests`` and
:class:`AsyncBloomClient` over ``httpx.AsyncClient`` (for triggers). Both share
:class:`_ClientCore`: request building and spec checks, answer parsing, and
the retry policy (tenacity):

* safe calls (GET, DELETE, logo PUTs, search): retried on 429, 5xx, timeouts
  and connection errors, exponential backoff with jitter, ``Retry-After``
  honoured, bounded by ``max_retries`` and ``retry_deadline``;
* paid POSTs (generate, edit, resize, remove-background, vectorize, brand
  create, uploads): retried only on 429 or when the request provably never
  reached Bloom (refused, DNS, connect timeout). A lost answer or a 5xx raises
  an error saying the call may have been charged;
* other 4xx are never retried.
"""

from __future__ import annotations

import io
import json
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar
from urllib.parse import quote, urljoin, urlparse

import httpx
import requests
import tenacity

from airflow_provider_bloom import __version__
from airflow_provider_bloom._budget import (
    DEFAULT_REQUESTS_PER_MINUTE,
    DEFAULT_WAIT_REQUESTS_PER_MINUTE,
    credential_fingerprint,
)
from airflow_provider_bloom._spec import (
    DEFAULT_BASE_URL,
    MAX_UPLOAD_BYTES,
    MAX_WAIT_SECONDS,
    OAUTH_TOKEN_PATH,
    PAID_OPERATIONS,
    Operation,
    answer_problem,
    check_ids,
    check_uuid,
    check_value,
    get_operation,
    to_camel,
    to_snake,
)
from airflow_provider_bloom.exceptions import (
    BloomAPIError,
    BloomAuthError,
    BloomError,
    BloomInputError,
    BloomRateLimitError,
    BloomServerError,
    BloomTransportError,
    error_from_response,
)

R = TypeVar("R")
FileInput = str | os.PathLike | bytes | bytearray | IO[bytes]
JSON = dict[str, Any]

USER_AGENT = f"airflow-provider-bloom/{__version__}"
CONNECT_TIMEOUT = 10.0
# Extra read time granted on top of a long-poll's own timeout.
WAIT_READ_MARGIN = 30.0
MAX_REDIRECTS = 5

# What may come before an SVG's root element: a BOM, whitespace, the XML declaration,
# processing instructions, comments and a DOCTYPE.
_SVG_PROLOGUE = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:\s+|<\?xml[^>]*\?>|<\?[^>]*\?>|<!--.*?-->|<!doctype\s+svg[^>]*>)*", re.DOTALL
)


def _is_svg(head: bytes) -> bool:
    """An SVG document: its root element is ``<svg`` (an HTML page that embeds one is not)."""
    lowered = head.lower()
    prologue = _SVG_PROLOGUE.match(lowered)
    rest = lowered[prologue.end() if prologue else 0 :]
    return rest.startswith(b"<svg") and rest[4:5] in {b" ", b">", b"\t", b"\n", b"\r", b"/"}


_MAGIC: list[tuple[str, Callable[[bytes], bool]]] = [
    ("image/png", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
    ("image/jpeg", lambda b: b.startswith(b"\xff\xd8\xff")),
    ("image/webp", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"),
    ("image/avif", lambda b: b[4:8] == b"ftyp" and b[8:12] in {b"avif", b"avis"}),
    ("image/svg+xml", lambda b: _is_svg(b[:4096])),
]
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/avif": ".avif",
    "image/svg+xml": ".svg",
}


def sniff_image_type(head: bytes) -> str | None:
    """The image MIME type from a file's first bytes, or None."""
    for mime, test in _MAGIC:
        if test(head):
            return mime
    return None


def extension_for(mime: str | None) -> str:
    return _EXTENSIONS.get((mime or "").split(";")[0].strip(), ".bin")


@dataclass(frozen=True)
class Upload:
    filename: str
    content: bytes
    mime: str


def read_upload(field_name: str, file: FileInput, allowed: tuple[str, ...]) -> Upload:
    """Read an upload from a path, bytes or a binary file object, and check it before sending."""
    if isinstance(file, (bytes, bytearray)):
        content, filename = bytes(file), "upload"
    elif isinstance(file, (str, os.PathLike)):
        path = Path(file)
        if not path.is_file():
            raise BloomInputError(field_name, f"no such file: {str(path)!r}")
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise BloomInputError(field_name, f"{path.name} is {size} bytes; Bloom accepts at most 10 MB")
        content, filename = path.read_bytes(), path.name
    elif hasattr(file, "read"):
        if isinstance(file, io.TextIOBase):
            raise BloomInputError(
                field_name, "file objects must be opened in binary mode ('rb'), not text mode"
            )
        try:
            content = file.read(MAX_UPLOAD_BYTES + 1)
        except UnicodeDecodeError:
            raise BloomInputError(field_name, "file objects must be opened in binary mode ('rb')") from None
        if not isinstance(content, (bytes, bytearray)):
            raise BloomInputError(field_name, "file objects must be opened in binary mode ('rb')")
        content = bytes(content)
        filename = Path(str(getattr(file, "name", "upload"))).name or "upload"
    else:
        raise BloomInputError(field_name, f"must be a path, bytes or a binary file object; got {type(file)}")
    if len(content) > MAX_UPLOAD_BYTES:
        raise BloomInputError(field_name, f"{filename} is over 10 MB ({len(content)}+ bytes)")
    if not content:
        raise BloomInputError(field_name, f"{filename} is empty")
    mime = sniff_image_type(content[:4096])
    if mime not in allowed:
        kinds = ", ".join(m.split("/")[1].upper() for m in allowed)
        raise BloomInputError(
            field_name, f"{filename} is {'not an image' if mime is None else mime}; Bloom accepts {kinds}"
        )
    if filename == "upload":
        filename += extension_for(mime)
    return Upload(filename, content, mime)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, repr=False)
class ClientSettings:
    """Everything a client needs; built from an Airflow connection by the hook."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    auth_header: str = "x-api-key"  # or "bearer"
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    oauth_token_url: str | None = None
    workspace_id: str | None = None
    brand_session_id: str | None = None
    timeout: float = 60.0
    max_retries: int = 5
    retry_deadline: float = 300.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    #: Requests per minute the triggerer's wait hub may send on this credential (Bloom allows 120).
    wait_requests_per_minute: int = DEFAULT_WAIT_REQUESTS_PER_MINUTE
    #: Requests per minute one task may send in a loop (post-processing, uploads, deletions).
    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE

    def __post_init__(self) -> None:
        if self.auth_header not in {"x-api-key", "bearer"}:
            raise BloomInputError("auth_header", f"must be 'x-api-key' or 'bearer'; got {self.auth_header!r}")
        try:
            parsed = urlparse(self.base_url)
            parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parsed = urlparse("")
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise BloomInputError("host", f"must be Bloom's base URL like {DEFAULT_BASE_URL}")
        if self.oauth_client_id and not self.oauth_client_secret:
            raise BloomInputError("oauth_client_secret", "is required with oauth_client_id")
        if self.max_retries < 0 or self.timeout <= 0:
            raise BloomInputError("max_retries/timeout", "must be >= 0 and > 0")
        for name in ("wait_requests_per_minute", "requests_per_minute"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 120:
                raise BloomInputError(
                    name,
                    f"must be a whole number between 1 and 120 (Bloom allows 120 per key); got {value!r}",
                )

    @property
    def fingerprint(self) -> str:
        """A one-way fingerprint of the credential (key, or OAuth client): safe in names and logs."""
        if self.uses_oauth:
            return credential_fingerprint(
                "oauth", self.oauth_client_id, self.oauth_client_secret, self.token_url
            )
        return credential_fingerprint("key", self.api_key, self.auth_header)

    @property
    def uses_oauth(self) -> bool:
        return bool(self.oauth_client_id)

    @property
    def token_url(self) -> str:
        if self.oauth_token_url:
            return self.oauth_token_url
        parsed = urlparse(self.base_url)
        return f"{parsed.scheme}://{parsed.netloc}{OAUTH_TOKEN_PATH}"

    def __repr__(self) -> str:  # never the key or the client secret
        auth = "oauth" if self.uses_oauth else (self.auth_header if self.api_key else "none")
        return f"ClientSettings(base_url={self.base_url!r}, auth={auth}, credential={self.fingerprint})"


# What OpenSSL reports when a TLS client meets a plain-HTTP server.
_PLAIN_HTTP_SIGNS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "RECORD LAYER FAILURE", "HTTP_REQUEST")


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlparse(a), urlparse(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


@dataclass
class PreparedCall:
    op: Operation
    url: str
    params: dict[str, str]
    json: JSON | None = None
    form: dict[str, str] | None = None
    upload: Upload | None = None
    read_timeout: float = 60.0

    def __repr__(self) -> str:
        return f"<PreparedCall {self.op.method} {self.url}>"


@dataclass
class _Token:
    value: str = field(repr=False)  # an OAuth access token is a credential
    expires_at: float = 0.0

    def __repr__(self) -> str:
        return f"_Token(value=***, expires_at={self.expires_at!r})"


E = TypeVar("E", bound=BaseException)
REDACTED = "***"


def _redact_json(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_json(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v, redact) for v in value]
    return value


# --------------------------------------------------------------------------- shared core


class _ClientCore:
    """Request building, checks, answer parsing and the retry policy, for both transports."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self._token: _Token | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"

    # -- secrets ---------------------------------------------------------------------------
    def _secrets(self) -> list[str]:
        values = [self.settings.api_key, self.settings.oauth_client_secret]
        if self._token is not None:
            values.append(self._token.value)
        return sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` (from a server) without this client's credentials, also URL- or JSON-escaped."""
        for secret in self._secrets():
            for form in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1]):
                text = text.replace(form, REDACTED)
        return text

    def scrubbed(self, exc: E) -> E:
        """``exc`` with the client's credentials removed from any text a server supplied."""
        if isinstance(exc, BloomAPIError):
            exc.message = self.redact(exc.message)
            exc.data = _redact_json(exc.data, self.redact)
            exc.args = (exc._render(),)
        return exc

    def error_from_response(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        *,
        operation_id: str | None = None,
        retry_after: str | None = None,
        paid: bool = False,
    ) -> BloomAPIError:
        """:func:`~airflow_provider_bloom.exceptions.error_from_response`, with the credentials redacted."""
        return self.scrubbed(
            error_from_response(
                status, body, content_type, operation_id=operation_id, retry_after=retry_after, paid=paid
            )
        )

    # -- building -------------------------------------------------------------------------
    def prepare(
        self,
        operation_id: str,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        file: FileInput | None = None,
    ) -> PreparedCall:
        """Check every argument against the spec and build the call. Raises BloomInputError."""
        op = get_operation(operation_id)
        url = self.base_url + op.path
        for name in op.path_params:
            arg = {"id": _path_arg_name(op), "token": "token"}.get(name, name)
            value = (path or {}).get(name)
            if value is None:
                raise BloomInputError(arg, "is required")
            url = url.replace("{" + name + "}", check_uuid(arg, value))

        params: dict[str, str] = {}
        wait_timeout: float | None = None
        for snake, value in self._with_defaults(op, op.query, query or {}).items():
            camel = to_camel(snake)
            if camel not in op.query:
                raise TypeError(f"{operation_id} takes no query parameter {snake!r}")
            if value is None or (camel == "wait" and value is False):
                continue
            if camel == "ids":
                minimum = 1
                params[camel] = ",".join(check_ids(snake, value, minimum=minimum))
                continue
            value = check_value(snake, value, op.query[camel])
            if camel == "timeout":
                wait_timeout = float(value)
            params[camel] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if operation_id == "images.deleteMany" and "ids" not in params:
            raise BloomInputError("ids", "is required: 1 to 50 image ids")

        payload: dict[str, Any] = {}
        for snake, value in self._with_defaults(op, op.body, body or {}).items():
            camel = to_camel(snake)
            if camel not in op.body:
                raise TypeError(f"{operation_id} takes no argument {snake!r}")
            if value is None:
                continue
            payload[camel] = check_value(snake, value, op.body[camel])
        for camel in sorted(op.required_body - set(payload) - {"file"}):
            hint = ""
            if camel in {"brandSessionId", "workspaceId"}:
                hint = f" (pass it, or set the Bloom connection's {to_snake(camel)} extra)"
            raise BloomInputError(to_snake(camel), f"is required{hint}")

        call = PreparedCall(op, url, params, read_timeout=self.settings.timeout)
        if "wait" in params:
            wait = wait_timeout if wait_timeout is not None else 120.0
            call.read_timeout = max(self.settings.timeout, min(wait, MAX_WAIT_SECONDS) + WAIT_READ_MARGIN)
        if op.content_type == "multipart/form-data":
            if file is None:
                raise BloomInputError("file", "is required: a path, bytes or a binary file object")
            call.upload = read_upload("file", file, allowed_mimes(op))
            call.form = {k: str(v) for k, v in payload.items()}
        elif file is not None:
            raise TypeError(f"{operation_id} takes no file")
        elif op.method in {"POST", "PUT"} or (op.method == "DELETE" and op.body):
            call.json = payload
        return call

    def _with_defaults(
        self, op: Operation, declared: Mapping[str, Any], given: Mapping[str, Any]
    ) -> dict[str, Any]:
        values = dict(given)
        # A lookup by ids must find images of any brand/workspace: no scoping defaults there.
        if given.get("ids") is not None:
            return values
        for camel, default in (
            ("brandSessionId", self.settings.brand_session_id),
            ("workspaceId", self.settings.workspace_id),
        ):
            snake = to_snake(camel)
            if camel in declared and values.get(snake) is None and default:
                values[snake] = default
        return values

    # -- auth ------------------------------------------------------------------------------
    def _static_auth_headers(self) -> dict[str, str]:
        key = self.settings.api_key
        if not key:
            return {}
        if self.settings.auth_header == "bearer":
            return {"Authorization": f"Bearer {key}"}
        return {"x-api-key": key}

    def _bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _token_valid(self) -> bool:
        return self._token is not None and self._token.expires_at > time.monotonic()

    def _token_form(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.settings.oauth_client_id or "",
            "client_secret": self.settings.oauth_client_secret or "",
        }

    def _store_token(self, status: int, body: bytes, content_type: str | None) -> str:
        if status >= 400:
            err = self.error_from_response(status, body, content_type, operation_id="oauth2.token")
            raise BloomAuthError(
                err.status, err.code or "OAUTH_TOKEN_FAILED", f"OAuth token request failed: {err.message}"
            ) from None
        try:
            payload = _json_loads(body)
            value = str(payload["access_token"])
            ttl = float(payload.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError) as exc:
            raise BloomAuthError(status, "OAUTH_TOKEN_FAILED", "OAuth token answer is not valid") from exc
        # Refresh a little early so a token never expires in flight.
        self._token = _Token(value, time.monotonic() + max(1.0, ttl - min(30.0, ttl * 0.1)))
        return value

    # -- answers ---------------------------------------------------------------------------
    def interpret(self, op: Operation, status: int, headers: Mapping[str, str], content: bytes) -> JSON:
        """Turn an HTTP answer into Bloom's ``data`` payload, or raise the matching error."""
        ctype = headers.get("content-type")
        if status >= 400:
            raise self.error_from_response(
                status,
                content,
                ctype,
                operation_id=op.operation_id,
                retry_after=headers.get("retry-after"),
                paid=op.paid,
            )
        if not 200 <= status < 300:
            where = headers.get("location")
            raise self._bad_answer(
                op, status, f"Bloom answered HTTP {status}" + (f" (a redirect to {where!r})" if where else "")
            )
        try:
            payload = _json_loads(content)
        except ValueError:
            raise self._bad_answer(
                op, status, f"Bloom answered HTTP {status} with a body that is not JSON"
            ) from None
        data = payload.get("data", payload) if isinstance(payload, dict) else payload
        if isinstance(data, dict) and op.operation_id == "images.generate":
            if "ids" not in data and "imageIds" in data:
                data["ids"] = data["imageIds"]  # older prose documents `imageIds`
        problem = answer_problem(op, status, data)
        if problem is not None:
            raise self._bad_answer(op, status, f"Bloom's answer is not what its spec promises: {problem}")
        assert isinstance(data, dict)
        return data

    def _bad_answer(self, op: Operation, status: int, message: str) -> BloomServerError:
        """An answer came back but is not a valid success: for a paid call, it may have been charged."""
        return self.scrubbed(
            BloomServerError(
                status, "INVALID_ANSWER", message, operation_id=op.operation_id, maybe_charged=op.paid
            )
        )

    def _lost_answer(self, op: Operation, message: str) -> BloomTransportError:
        """The request went out but no answer came back: a paid call may have been charged."""
        return BloomTransportError(
            f"{message} ({op.operation_id})", operation_id=op.operation_id, maybe_charged=op.paid
        )

    def _not_sent(self, op: Operation, message: str) -> BloomTransportError:
        """The request provably never reached Bloom: safe to retry, even a paid call."""
        return BloomTransportError(f"{message} ({op.operation_id})", operation_id=op.operation_id)

    def _tls_failed(self, op: Operation, host: str, detail: str) -> BloomTransportError:
        """The TLS handshake failed: no request was sent, and trying again gives the same answer."""
        hint = ""
        if any(s in detail.upper() for s in _PLAIN_HTTP_SIGNS):
            hint = (
                f"; the server at {host} seems to speak plain HTTP: write the base URL with http:// "
                "(for a local emulator: http://127.0.0.1:PORT/api/v1)"
            )
        elif "CERTIFICATE_VERIFY_FAILED" in detail.upper():
            hint = f"; the certificate of {host} could not be verified"
        error = self._not_sent(op, f"TLS handshake with {host} failed, nothing was sent{hint}")
        error.retryable = False
        return error

    # -- retry policy ----------------------------------------------------------------------
    def should_retry(self, exc: BaseException) -> bool:
        """Whether ``exc`` may be answered by sending the same request again.

        A paid POST is sent again only after a 429 (Bloom refused it) or when
        the request provably never left (a refused connection): every other
        answer, a malformed or unexpected one included, may mean it was charged.
        """
        if getattr(exc, "maybe_charged", False) or getattr(exc, "retryable", True) is False:
            return False
        if isinstance(exc, BloomRateLimitError):
            return True  # Bloom rejected the request: nothing happened, nothing was charged
        if getattr(exc, "operation_id", None) in PAID_OPERATIONS:
            return isinstance(exc, BloomTransportError)  # only a provably unsent request is left here
        return isinstance(exc, (BloomServerError, BloomTransportError))

    def _wait_seconds(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after, self.settings.max_retry_after))
        backoff = tenacity.wait_random_exponential(
            multiplier=self.settings.backoff_base, max=self.settings.backoff_max
        )
        return float(backoff(state))

    def _refresh_token_after(self, call: PreparedCall, exc: BloomAuthError) -> bool:
        """After a 401: drop an OAuth token so the next try fetches a new one (Bloom's 401 charges nothing).

        True when the call should be sent once more with a fresh token.
        """
        if self.settings.uses_oauth and call.op.authenticated and not exc.maybe_charged:
            self._token = None
            return True
        return False

    def retry_kwargs(self) -> dict[str, Any]:
        return {
            "retry": tenacity.retry_if_exception(self.should_retry),
            "wait": self._wait_seconds,
            "stop": tenacity.stop_after_attempt(self.settings.max_retries + 1)
            | tenacity.stop_before_delay(self.settings.retry_deadline),
            "reraise": True,
        }

    def redirect_target(self, current: str, status: int, headers: Mapping[str, str]) -> str | None:
        if status not in {301, 302, 303, 307, 308}:
            return None
        location = headers.get("location")
        return urljoin(current, location) if location else None

    def absolute_url(self, url: str) -> str:
        """Bloom's ``imageUrl`` may be a short path (``/img/{id}``): resolve it against the API's origin."""
        return urljoin(self.base_url + "/", url)

    def credentials_allowed(self, url: str) -> bool:
        """Credentials go only to the configured base URL's origin."""
        return same_origin(url, self.base_url)


def _path_arg_name(op: Operation) -> str:
    return "brand_id" if op.path.startswith("/brands") else "image_id"


def allowed_mimes(op: Operation | str) -> tuple[str, ...]:
    """The file types an upload operation accepts, from the spec."""
    if isinstance(op, str):
        op = get_operation(op)
    schema = op.body.get("file", {})
    return tuple(o["contentMediaType"] for o in schema.get("anyOf", []) if "contentMediaType" in o)


def _json_loads(content: bytes) -> Any:
    return json.loads(content)


# --------------------------------------------------------------------------- operations


class BloomOperations(Generic[R]):
    """Bloom's 23 operations. Arguments are the spec's names in snake_case.

    Each returns Bloom's ``data`` payload (``R`` is a dict for the sync client
    and an awaitable of one for the async client).
    """

    def _call(
        self,
        operation_id: str,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        file: FileInput | None = None,
    ) -> R:
        raise NotImplementedError

    # Account
    def get_account(self) -> R:
        return self._call("account.get")

    def get_credits(self, workspace_id: str | None = None) -> R:
        return self._call("credits.get", query={"workspace_id": workspace_id})

    def list_workspaces(self) -> R:
        return self._call("workspaces.list")

    # Brands
    def list_brands(
        self, workspace_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> R:
        return self._call(
            "brands.list", query={"workspace_id": workspace_id, "limit": limit, "cursor": cursor}
        )

    def create_brand(
        self,
        url: str,
        workspace_id: str | None = None,
        logo_url: str | None = None,
        collect_images: bool | None = None,
    ) -> R:
        return self._call(
            "brands.create",
            body={
                "url": url,
                "workspace_id": workspace_id,
                "logo_url": logo_url,
                "collect_images": collect_images,
            },
        )

    def get_brand(self, brand_id: str, wait: bool = False, timeout: int | None = None) -> R:
        return self._call("brands.get", path={"id": brand_id}, query={"wait": wait, "timeout": timeout})

    def delete_brand(self, brand_id: str) -> R:
        return self._call("brands.delete", path={"id": brand_id})

    def update_brand_logo(self, brand_id: str, logo_url: str) -> R:
        return self._call("brands.updateLogo", path={"id": brand_id}, body={"logo_url": logo_url})

    def upload_brand_logo_file(self, brand_id: str, file: FileInput) -> R:
        return self._call("brands.uploadLogoFile", path={"id": brand_id}, file=file)

    def upload_brand_logo_file_signed(self, brand_id: str, token: str, file: FileInput) -> R:
        return self._call("brands.uploadLogoFileSigned", path={"id": brand_id, "token": token}, file=file)

    # Images
    def list_images(
        self,
        ids: list[str] | str | None = None,
        workspace_id: str | None = None,
        brand_session_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        source: str | None = None,
        status: str | None = None,
        action_type: str | None = None,
        include_urls: bool | None = None,
        wait: bool = False,
        timeout: int | None = None,
    ) -> R:
        return self._call(
            "images.list",
            query={
                "ids": ids,
                "workspace_id": workspace_id,
                "brand_session_id": brand_session_id,
                "limit": limit,
                "cursor": cursor,
                "source": source,
                "status": status,
                "action_type": action_type,
                "include_urls": include_urls,
                "wait": wait,
                "timeout": timeout,
            },
        )

    def delete_images(self, ids: list[str] | str) -> R:
        return self._call("images.deleteMany", query={"ids": ids})

    def get_image(self, image_id: str, wait: bool = False, timeout: int | None = None) -> R:
        return self._call("images.get", path={"id": image_id}, query={"wait": wait, "timeout": timeout})

    def delete_image(self, image_id: str) -> R:
        return self._call("images.delete", path={"id": image_id})

    def generate_images(
        self,
        prompt: str,
        brand_session_id: str | None = None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        variant_count: int | None = None,
        reference_image_ids: list[str] | None = None,
    ) -> R:
        return self._call(
            "images.generate",
            body={
                "prompt": prompt,
                "brand_session_id": brand_session_id,
                "aspect_ratio": aspect_ratio,
                "image_size": image_size,
                "model": model,
                "variant_count": variant_count,
                "reference_image_ids": reference_image_ids,
            },
        )

    def edit_image(
        self,
        image_id: str,
        prompt: str,
        brand_session_id: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        reference_image_ids: list[str] | None = None,
    ) -> R:
        return self._call(
            "images.edit",
            path={"id": image_id},
            body={
                "prompt": prompt,
                "brand_session_id": brand_session_id,
                "image_size": image_size,
                "model": model,
                "reference_image_ids": reference_image_ids,
            },
        )

    def resize_image(self, image_id: str, target_aspect_ratio: str, brand_session_id: str | None = None) -> R:
        return self._call(
            "images.resize",
            path={"id": image_id},
            body={"target_aspect_ratio": target_aspect_ratio, "brand_session_id": brand_session_id},
        )

    def remove_background(self, image_id: str, brand_session_id: str | None = None) -> R:
        return self._call(
            "images.removeBackground", path={"id": image_id}, body={"brand_session_id": brand_session_id}
        )

    def vectorize_image(self, image_id: str, brand_session_id: str | None = None) -> R:
        return self._call(
            "images.vectorize", path={"id": image_id}, body={"brand_session_id": brand_session_id}
        )

    def upload_image(self, image_url: str, brand_session_id: str | None = None) -> R:
        return self._call(
            "images.upload", body={"image_url": image_url, "brand_session_id": brand_session_id}
        )

    def upload_image_file(self, file: FileInput, brand_session_id: str | None = None) -> R:
        return self._call("images.uploadFile", body={"brand_session_id": brand_session_id}, file=file)

    def upload_image_file_signed(self, token: str, file: FileInput) -> R:
        return self._call("images.uploadFileSigned", path={"token": token}, file=file)

    def search_images(
        self,
        query: str,
        brand_session_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        max_distance: float | None = None,
    ) -> R:
        return self._call(
            "images.search",
            body={
                "query": query,
                "brand_session_id": brand_session_id,
                "limit": limit,
                "cursor": cursor,
                "max_distance": max_distance,
            },
        )


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
    kind, host = type(exc).__name__, urlparse(url).netloc
    if isinstance(exc, requests.exceptions.SSLError):
        return core._tls_failed(op, host, str(exc))  # raised during the handshake, before any request
    if never_sent:
        return core._not_sent(op, f"could not connect to {host} ({kind})")
    return core._lost_answer(op, f"connection to {host} failed after the request was sent ({kind})")


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
        if not self.settings.uses_oauth:
            return self._static_auth_headers()
        if not self._token_valid():
            for attempt in tenacity.Retrying(**self.retry_kwargs()):
                with attempt:
                    try:
                        resp = self.session.post(
                            self.settings.token_url,
                            data=self._token_form(),
                            timeout=(CONNECT_TIMEOUT, self.settings.timeout),
                            allow_redirects=False,
                        )
                    except requests.RequestException as exc:
                        raise self._not_sent(
                            get_operation("account.get"), "OAuth token request failed"
                        ) from exc
                    self._store_token(resp.status_code, resp.content, resp.headers.get("content-type"))
        assert self._token is not None
        return self._bearer(self._token.value)

    def _call(
        self,
        operation_id: str,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        file: FileInput | None = None,
    ) -> JSON:
        call = self.prepare(operation_id, path=path, query=query, body=body, file=file)
        return self.execute(call)

    def execute(self, call: PreparedCall) -> JSON:
        refreshed = False
        while True:
            try:
                for attempt in tenacity.Retrying(**self.retry_kwargs()):
                    with attempt:
                        return self._send_once(call)
            except BloomAuthError as exc:
                if refreshed or not self._refresh_token_after(call, exc):
                    raise
                refreshed = True
                continue
            raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(self, call: PreparedCall) -> JSON:
        headers = self._auth_headers() if call.op.authenticated else {}
        files = None
        if call.upload is not None:
            files = {"file": (call.upload.filename, call.upload.content, call.upload.mime)}
        try:
            resp = self.session.request(
                call.op.method,
                call.url,
                params=call.params,
                json=call.json,
                data=call.form,
                files=files,
                headers=headers,
                timeout=(CONNECT_TIMEOUT, call.read_timeout),
                allow_redirects=False,
            )
            content = resp.content
        except requests.RequestException as exc:
            raise _classify_requests_error(self, call.op, exc, call.url) from exc
        return self.interpret(call.op, resp.status_code, resp.headers, content)

    @contextmanager
    def open_download(self, url: str, *, timeout: float | None = None) -> Iterator[requests.Response]:
        """Open an image URL for streaming, following Bloom's redirects.

        The credentials go only to the base URL's origin: a hop to any other
        host (a storage bucket, a CDN) is made without them. Transient
        failures before the body starts are retried (downloads are free).
        """
        url = self.absolute_url(url)
        op = get_operation("images.get")
        for attempt in tenacity.Retrying(**self.retry_kwargs()):
            with attempt:
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
                    content = resp.content
                    resp.close()
                    raise self.error_from_response(
                        resp.status_code, content, resp.headers.get("content-type"), operation_id="download"
                    )
        try:
            yield resp
        finally:
            resp.close()


# --------------------------------------------------------------------------- async transport


def _is_tls_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return "SSL" in str(exc).upper()


def _classify_httpx_error(core: _ClientCore, op: Operation, exc: httpx.HTTPError, url: str) -> BloomError:
    kind, host = type(exc).__name__, urlparse(url).netloc
    if isinstance(exc, httpx.ConnectError) and _is_tls_error(exc):
        return core._tls_failed(op, host, str(exc))
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return core._not_sent(op, f"could not connect to {host} ({kind})")
    return core._lost_answer(op, f"connection to {host} failed after the request was sent ({kind})")


class AsyncBloomClient(_ClientCore, BloomOperations[Awaitable[JSON]]):
    """Asynchronous Bloom client over ``httpx.AsyncClient``: safe inside the triggerer's event loop."""

    def __init__(self, settings: ClientSettings, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(settings)
        self.http = client or httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncBloomClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _auth_headers(self) -> dict[str, str]:
        if not self.settings.uses_oauth:
            return self._static_auth_headers()
        if not self._token_valid():
            async for attempt in tenacity.AsyncRetrying(**self.retry_kwargs()):
                with attempt:
                    try:
                        resp = await self.http.post(
                            self.settings.token_url,
                            data=self._token_form(),
                            timeout=httpx.Timeout(self.settings.timeout, connect=CONNECT_TIMEOUT),
                        )
                    except httpx.HTTPError as exc:
                        raise self._not_sent(
                            get_operation("account.get"), "OAuth token request failed"
                        ) from exc
                    self._store_token(resp.status_code, resp.content, resp.headers.get("content-type"))
        assert self._token is not None
        return self._bearer(self._token.value)

    def _call(
        self,
        operation_id: str,
        *,
        path: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        file: FileInput | None = None,
    ) -> Awaitable[JSON]:
        # Checks run now, synchronously, so bad input fails at the call site.
        call = self.prepare(operation_id, path=path, query=query, body=body, file=file)
        return self.execute(call)

    async def execute(self, call: PreparedCall) -> JSON:
        refreshed = False
        while True:
            try:
                async for attempt in tenacity.AsyncRetrying(**self.retry_kwargs()):
                    with attempt:
                        return await self._send_once(call)
            except BloomAuthError as exc:
                if refreshed or not self._refresh_token_after(call, exc):
                    raise
                refreshed = True
                continue
            raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(self, call: PreparedCall) -> JSON:
        headers = await self._auth_headers() if call.op.authenticated else {}
        files = None
        if call.upload is not None:
            files = {"file": (call.upload.filename, io.BytesIO(call.upload.content), call.upload.mime)}
        try:
            resp = await self.http.request(
                call.op.method,
                call.url,
                params=call.params,
                json=call.json if call.upload is None else None,
                data=call.form,
                files=files,
                headers=headers,
                timeout=httpx.Timeout(call.read_timeout, connect=CONNECT_TIMEOUT),
            )
        except httpx.HTTPError as exc:
            raise _classify_httpx_error(self, call.op, exc, call.url) from exc
        return self.interpret(call.op, resp.status_code, resp.headers, resp.content)

    @asynccontextmanager
    async def open_download(self, url: str, *, timeout: float | None = None) -> AsyncIterator[httpx.Response]:
        """Async twin of :meth:`BloomClient.open_download` (credentials only to the base URL's origin)."""
        url = self.absolute_url(url)
        op = get_operation("images.get")
        resp: httpx.Response | None = None
        async for attempt in tenacity.AsyncRetrying(**self.retry_kwargs()):
            with attempt:
                current = url
                for _ in range(MAX_REDIRECTS + 1):
                    headers = await self._auth_headers() if self.credentials_allowed(current) else {}
                    try:
                        request = self.http.build_request(
                            "GET",
                            current,
                            headers=headers,
                            timeout=httpx.Timeout(timeout or self.settings.timeout, connect=CONNECT_TIMEOUT),
                        )
                        resp = await self.http.send(request, stream=True)
                    except httpx.HTTPError as exc:
                        raise _classify_httpx_error(self, op, exc, current) from exc
                    target = self.redirect_target(current, resp.status_code, resp.headers)
                    if target is None:
                        break
                    await resp.aclose()
                    current = target
                else:
                    raise BloomServerError(310, None, f"too many redirects from {url}")
                if resp.status_code >= 400:
                    content = await resp.aread()
                    await resp.aclose()
                    raise self.error_from_response(
                        resp.status_code, content, resp.headers.get("content-type"), operation_id="download"
                    )
        assert resp is not None
        try:
            yield resp
        finally:
            await resp.aclose()


__all__ = [
    "AsyncBloomClient",
    "BloomAPIError",
    "BloomClient",
    "BloomOperations",
    "ClientSettings",
    "FileInput",
    "PreparedCall",
    "extension_for",
    "read_upload",
    "sniff_image_type",
]
