"""The FastAPI app: Bloom's 23 operations under ``/api/v1``, files, OAuth tokens, admin endpoints."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_bloom.client.spec import OAUTH_TOKEN_PATH
from airflow_provider_bloom.emulator import admin, spec
from airflow_provider_bloom.emulator.auth import authenticate, valid_oauth_client
from airflow_provider_bloom.emulator.config import EmulatorConfig
from airflow_provider_bloom.emulator.errors import EmulatorError, bad_request, dumps, generic_code
from airflow_provider_bloom.emulator.handlers import HANDLERS, Call, Handler
from airflow_provider_bloom.emulator.middleware import OPERATION_SCOPE_KEY, EmulatorMiddleware
from airflow_provider_bloom.emulator.runtime import Emulator
from airflow_provider_bloom.emulator.validation import check_form, check_json_body, check_params, read_form
from airflow_provider_bloom.emulator.views import UrlContext

Endpoint = Callable[[Request], Awaitable[Response]]


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(payload), status, headers=headers, media_type="application/json")


def _check_rate_limit(emulator: Emulator, caller: str) -> None:
    cfg = emulator.config
    if not cfg.rate_limit_per_minute:
        return
    wait = emulator.rate_limiter.hit(caller, cfg.rate_limit_per_minute, cfg.rate_limit_window_seconds)
    if wait is not None:
        headers = {"retry-after": str(max(1, math.ceil(wait)))} if cfg.rate_limit_retry_after else {}
        raise EmulatorError(429, "TOO_MANY_REQUESTS", headers=headers)


async def _read_body(op: spec.OperationSpec, request: Request, emulator: Emulator) -> dict[str, Any]:
    if op.body is None:
        return {}
    if op.body.is_multipart:
        return check_form(op, await read_form(request, emulator.config.max_upload_bytes))
    return check_json_body(op, await request.body())


def operation_endpoint(op: spec.OperationSpec, handler: Handler) -> Endpoint:
    """Auth -> rate limit -> input validation -> handler -> ``{"data": ...}``."""

    async def endpoint(request: Request) -> Response:
        emulator = _emulator(request)
        if not op.signed:
            principal = authenticate(request.headers, emulator.config, emulator.store)
            _check_rate_limit(emulator, principal.fingerprint)
        params = check_params(op, request.path_params, request.query_params)
        body = await _read_body(op, request, emulator)
        origin = _origin(request)
        urls = UrlContext(origin, lambda file_id: emulator.signed_url(file_id, origin))
        status, data = await handler(Call(emulator, op, params, body, urls, request.url.netloc))
        return _json(status, {"data": data})

    endpoint.__name__ = op.operation_id.replace(".", "_")
    return endpoint


def _install_error_handlers(app: FastAPI) -> None:
    def render(request: Request, error: EmulatorError) -> Response:
        op = request.scope.get(OPERATION_SCOPE_KEY)
        payload = _emulator(request).error_payload(error, op)
        return _json(error.status, payload, error.headers)

    @app.exception_handler(EmulatorError)
    async def bloom_error(request: Request, exc: EmulatorError) -> Response:
        return render(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return render(request, EmulatorError(exc.status_code, generic_code(exc.status_code), str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return render(request, bad_request("Input validation failed", [dict(e) for e in exc.errors()]))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        return render(
            request, EmulatorError(500, "INTERNAL_SERVER_ERROR", f"Emulator error: {type(exc).__name__}")
        )


def _install_file_routes(app: FastAPI) -> None:
    @app.get("/img/{file_id}", include_in_schema=False)
    async def short_link(file_id: str, request: Request) -> Response:
        """Bloom's short image link: a redirect to a signed, expiring download URL."""
        emulator = _emulator(request)
        if emulator.servable(file_id) is None:
            raise EmulatorError(404, "IMAGE_NOT_FOUND")
        return RedirectResponse(emulator.signed_url(file_id, _origin(request)), status_code=302)

    @app.get("/_files/{file_id}", include_in_schema=False)
    async def download(file_id: str, request: Request) -> Response:
        emulator = _emulator(request)
        query = request.query_params
        problem = emulator.check_signature(file_id, query.get("exp", ""), query.get("sig", ""))
        if problem is not None:
            raise EmulatorError(403, problem, "The download URL is invalid or has expired")
        item = emulator.servable(file_id)
        if item is None:
            raise EmulatorError(404, "IMAGE_NOT_FOUND")
        data, mime_type = await emulator.file_bytes(item)
        return Response(data, media_type=mime_type, headers={"cache-control": "private, max-age=60"})


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return client_id, secret


def _install_oauth_route(app: FastAPI) -> None:
    @app.post(OAUTH_TOKEN_PATH, include_in_schema=False)
    async def token(request: Request) -> Response:
        """OAuth 2 client-credentials grant; the access token works as ``Authorization: Bearer``."""
        emulator = _emulator(request)
        try:
            form = await request.form()
        except Exception:  # malformed form bodies surface as several parser errors
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        client_id, secret = str(form.get("client_id") or ""), str(form.get("client_secret") or "")
        basic = _basic_credentials(request.headers.get("authorization", ""))
        if basic is not None:
            client_id, secret = basic
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if not valid_oauth_client(client_id, secret, emulator.config):
            return JSONResponse(
                {"error": "invalid_client"}, status_code=401, headers={"www-authenticate": "Basic"}
            )
        ttl = emulator.config.oauth_token_ttl_seconds
        expires_in: float = int(ttl) if float(ttl).is_integer() else ttl
        access_token = emulator.store.issue_oauth_token(ttl)
        return JSONResponse(
            {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in, "scope": "api"},
            headers={"cache-control": "no-store"},
        )


def create_app(config: EmulatorConfig | None = None) -> FastAPI:
    """A new emulator app with its own state. ``app.state.emulator`` is the :class:`Emulator`."""
    emulator = Emulator(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        emulator.hub.close()

    app = FastAPI(title="Bloom emulator", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.emulator = emulator
    for op in spec.route_order():
        app.add_api_route(
            spec.API_PREFIX + op.path,
            operation_endpoint(op, HANDLERS[op.operation_id]),
            methods=[op.method],
            operation_id=op.operation_id,
            include_in_schema=False,
        )
    _install_file_routes(app)
    _install_oauth_route(app)
    admin.install(app)
    _install_error_handlers(app)
    app.add_middleware(EmulatorMiddleware, emulator=emulator)
    return app
