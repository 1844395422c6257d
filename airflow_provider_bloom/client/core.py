"""The client's shared decisions, for both transports (``httpx.Client`` and ``httpx.AsyncClient``).

:class:`_ClientCore` builds and checks requests from the spec, turns answers into
Bloom's ``data`` or the matching error, redacts credentials, classifies transport
failures and runs the one retry policy of :mod:`.retry` in tenacity's loop:

* safe calls (GET, DELETE, the URL and file logo PUTs, search): retried on 429, 5xx, timeouts
  and connection errors, with the one backoff of :mod:`.retry` (jittered
  exponential, ``Retry-After`` honoured up to its cap), bounded by ``max_retries``
  and ``retry_deadline``;
* paid requests (:data:`~.spec.PAID_OPERATIONS`: generate, edit, resize,
  remove-background, vectorize, brand create, uploads, the signed logo PUT):
  retried only on 429 or when the request provably never reached Bloom
  (refused, DNS, connect timeout). A lost answer or a 5xx raises an error
  saying the call may have been charged;
* other 4xx are never retried.

The transports in :mod:`airflow_provider_bloom.client.transport` only move bytes around these decisions.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlparse

import tenacity

from airflow_provider_bloom.client.files import FileInput, Upload, allowed_mimes, read_upload
from airflow_provider_bloom.client.operations import JSON
from airflow_provider_bloom.client.retry import backoff, may_send_again, retry_after
from airflow_provider_bloom.client.settings import WAIT_READ_MARGIN, ClientSettings, same_origin
from airflow_provider_bloom.client.spec import (
    MAX_WAIT_SECONDS,
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
    BloomServerError,
    BloomTransportError,
    error_from_response,
)

E = TypeVar("E", bound=BaseException)
REDACTED = "***"
# What OpenSSL reports when a TLS client meets a plain-HTTP server.
_PLAIN_HTTP_SIGNS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "RECORD LAYER FAILURE", "HTTP_REQUEST")


@dataclass
class PreparedCall:
    """One checked request, ready to send: the operation, URL, query, and JSON body or upload."""

    op: Operation
    url: str
    params: dict[str, str]
    json: JSON | None = None
    form: dict[str, str] | None = None
    upload: Upload | None = None
    read_timeout: float = 60.0

    def __repr__(self) -> str:
        return f"<PreparedCall {self.op.method} {self.url}>"

    def request_args(self) -> dict[str, Any]:
        """Return the arguments ``httpx``'s clients take to send this call."""
        files = None
        if self.upload is not None:
            files = {"file": (self.upload.filename, self.upload.content, self.upload.mime)}
        return {
            "method": self.op.method,
            "url": self.url,
            "params": self.params,
            "json": self.json,
            "data": self.form,
            "files": files,
        }


@dataclass(frozen=True)
class Exchange:
    """One answer as this machine saw it: its status, its ``Date`` header, and the ``time.monotonic()``
    values of when the request went out and when the answer was in."""

    status: int
    date: str | None
    sent: float
    received: float


@dataclass
class _Token:
    value: str = field(repr=False)  # an OAuth access token is a credential
    expires_at: float = 0.0

    def __repr__(self) -> str:
        return f"_Token(value=***, expires_at={self.expires_at!r})"


def _redact_json(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_json(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v, redact) for v in value]
    return value


def caused_by_tls(exc: BaseException) -> bool:
    """Return whether ``exc`` (or an exception it was raised from) is a TLS failure."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return "SSL" in str(exc).upper()


class _ClientCore:
    """Request building, checks, answer parsing and the retry policy, for both transports."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self._token: _Token | None = None
        self._observers: list[Callable[[Exchange], None]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"

    # -- secrets ---------------------------------------------------------------------------
    def _secrets(self) -> list[str]:
        values = list(self.settings.secrets)
        if self._token is not None:
            values.append(self._token.value)
        return sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """Return ``text`` (from a server) without this client's credentials, also URL- or JSON-escaped."""
        for secret in self._secrets():
            for form in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1]):
                text = text.replace(form, REDACTED)
        return text

    def scrubbed(self, exc: E) -> E:
        """Return ``exc`` with the client's credentials removed from any text a server supplied."""
        if isinstance(exc, BloomAPIError):
            exc.message = self.redact(exc.message)
            exc.data = _redact_json(exc.data, self.redact)
            exc.args = (exc._render(),)
        return exc

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
            arg = op.argument(name)
            value = (path or {}).get(name)
            if value is None:
                raise BloomInputError(arg, "is required")
            url = url.replace("{" + name + "}", check_uuid(arg, value))

        params: dict[str, str] = {}
        wait_timeout: float | None = None
        for snake, value in self._with_defaults(op.query, query or {}).items():
            camel = to_camel(snake)
            if camel not in op.query:
                raise TypeError(f"{operation_id} takes no query parameter {snake!r}")
            if value is None or (camel == "wait" and value is False):
                continue
            if camel == "ids":
                params[camel] = ",".join(check_ids(snake, value, minimum=1))
                continue
            value = check_value(snake, value, op.query[camel])
            if camel == "timeout":
                wait_timeout = float(value)
            params[camel] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if operation_id == "images.deleteMany" and "ids" not in params:
            raise BloomInputError("ids", "is required: 1 to 50 image ids")

        payload: dict[str, Any] = {}
        for snake, value in self._with_defaults(op.body, body or {}).items():
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

    def _with_defaults(self, declared: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
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
    def _needs_token(self) -> bool:
        """Whether an OAuth access token must be fetched before the next authenticated request."""
        valid = self._token is not None and self._token.expires_at > time.monotonic()
        return self.settings.uses_oauth and not valid

    def _current_auth_headers(self) -> dict[str, str]:
        """The credential headers to send now (after any token fetch :meth:`_needs_token` asked for)."""
        if self.settings.uses_oauth:
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token.value}"}
        key = self.settings.api_key
        if not key:
            return {}
        if self.settings.auth_header == "bearer":
            return {"Authorization": f"Bearer {key}"}
        return {"x-api-key": key}

    def _token_form(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.settings.oauth_client_id or "",
            "client_secret": self.settings.oauth_client_secret or "",
        }

    def _token_not_sent(self) -> BloomTransportError:
        return self._not_sent(get_operation("account.get"), "OAuth token request failed")

    def _store_token(self, status: int, body: bytes, content_type: str | None) -> str:
        if status >= 400:
            err = self.scrubbed(error_from_response(status, body, content_type, operation_id="oauth2.token"))
            raise BloomAuthError(
                err.status, err.code or "OAUTH_TOKEN_FAILED", f"OAuth token request failed: {err.message}"
            ) from None
        try:
            payload = json.loads(body)
            value = str(payload["access_token"])
            ttl = float(payload.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError) as exc:
            raise BloomAuthError(status, "OAUTH_TOKEN_FAILED", "OAuth token answer is not valid") from exc
        # Refresh a little early so a token never expires in flight.
        self._token = _Token(value, time.monotonic() + max(1.0, ttl - min(30.0, ttl * 0.1)))
        return value

    def _refresh_token_after(self, call: PreparedCall, exc: BloomAuthError) -> bool:
        """After a 401: drop an OAuth token so the next try fetches a new one (Bloom's 401 charges nothing).

        True when the call should be sent once more with a fresh token.
        """
        if self.settings.uses_oauth and call.op.authenticated and not exc.maybe_charged:
            self._token = None
            return True
        return False

    # -- answers ---------------------------------------------------------------------------
    @contextmanager
    def observe_answers(self, callback: Callable[[Exchange], None]) -> Iterator[None]:
        """Call ``callback`` with an :class:`Exchange` for every answer to an API call made while inside."""
        self._observers.append(callback)
        try:
            yield
        finally:
            self._observers.remove(callback)

    def _observed(self, status: int, headers: Mapping[str, str], sent: float) -> None:
        """Tell the observers about one answer (see :meth:`observe_answers`)."""
        if self._observers:
            exchange = Exchange(status, headers.get("date"), sent, time.monotonic())
            for callback in list(self._observers):
                callback(exchange)

    def interpret(self, op: Operation, status: int, headers: Mapping[str, str], content: bytes) -> JSON:
        """Turn an HTTP answer into Bloom's ``data`` payload, or raise the matching error."""
        ctype = headers.get("content-type")
        if status >= 400:
            raise self.scrubbed(
                error_from_response(
                    status,
                    content,
                    ctype,
                    operation_id=op.operation_id,
                    retry_after=headers.get("retry-after"),
                    paid=op.paid,
                )
            )
        if not 200 <= status < 300:
            where = headers.get("location")
            raise self._bad_answer(
                op, status, f"Bloom answered HTTP {status}" + (f" (a redirect to {where!r})" if where else "")
            )
        try:
            payload = json.loads(content)
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

    def transport_failure(
        self, op: Operation, url: str, exc: Exception, *, tls: bool, never_sent: bool
    ) -> BloomError:
        """Return the error for a request that got no answer, from what the transport could tell.

        ``tls``: the TLS handshake failed (nothing was sent; trying again is pointless).
        ``never_sent``: the connection was never made, so even a paid call can be sent again.
        Anything else may have reached Bloom: a paid call may have been charged.
        """
        kind, host = type(exc).__name__, urlparse(url).netloc
        if tls:
            return self._tls_failed(op, host, str(exc))
        if never_sent:
            return self._not_sent(op, f"could not connect to {host} ({kind})")
        return self._lost_answer(op, f"connection to {host} failed after the request was sent ({kind})")

    # -- retry policy ----------------------------------------------------------------------
    def _wait_seconds(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff(
            state.attempt_number,
            base=self.settings.backoff_base,
            cap=self.settings.backoff_max,
            retry_after=retry_after(exc) if exc is not None else None,
        )

    def retry_kwargs(self, *, retry: bool = True) -> dict[str, Any]:
        """Return tenacity's arguments for this client's retry policy (both transports use them).

        ``retry=False``: send once (for a caller that backs off within its own deadline).
        """
        attempts = self.settings.max_retries + 1 if retry else 1
        return {
            "retry": tenacity.retry_if_exception(may_send_again),
            "wait": self._wait_seconds,
            "stop": tenacity.stop_after_attempt(attempts)
            | tenacity.stop_before_delay(self.settings.retry_deadline),
            "reraise": True,
        }

    # -- redirects -------------------------------------------------------------------------
    def redirect_target(self, current: str, status: int, headers: Mapping[str, str]) -> str | None:
        """Return where a redirect answer points, or None when the answer is not a redirect."""
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
