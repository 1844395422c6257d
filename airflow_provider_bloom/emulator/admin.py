"""Admin endpoints under ``/_emulator/`` (no auth): reset, config, credits, faults, observation."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from airflow_provider_bloom.emulator import spec
from airflow_provider_bloom.emulator.errors import EmulatorError
from airflow_provider_bloom.emulator.faults import FaultRule
from airflow_provider_bloom.emulator.runtime import PSEUDO_OPERATIONS, Emulator

KNOWN_OPERATIONS = frozenset(spec.operations()) | PSEUDO_OPERATIONS


class AdminError(Exception):
    """A bad admin request (400 ``{"error": message}``)."""


class AdminForbidden(Exception):
    """The admin API is a test tool: only clients in ``admin_networks`` may use it (403)."""


def _admin_allowed(request: Request) -> None:
    emulator: Emulator = request.app.state.emulator
    host = request.client.host if request.client else None
    if not emulator.config.admin_allowed(host):
        raise AdminForbidden(
            f"the emulator's admin API answers only clients in admin_networks "
            f"{emulator.config.admin_networks}; {host} is not (start it with --admin-from to allow more)"
        )


router = APIRouter(prefix="/_emulator", dependencies=[Depends(_admin_allowed)])


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise AdminError(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise AdminError("body must be a JSON object")
    return payload


def install(app: FastAPI) -> None:
    app.include_router(router)

    @app.exception_handler(AdminError)
    async def admin_error(request: Request, exc: AdminError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(AdminForbidden)
    async def admin_forbidden(request: Request, exc: AdminForbidden) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=403)


@router.post("/reset")
async def reset(request: Request) -> dict[str, Any]:
    _emulator(request).reset()
    return {"ok": True}


@router.get("/config")
async def get_config(request: Request) -> dict[str, Any]:
    return _emulator(request).config.public_dict()


@router.post("/config")
async def patch_config(request: Request) -> dict[str, Any]:
    patch = await _json_object(request)
    try:
        return _emulator(request).configure(patch).public_dict()
    except ValueError as exc:
        raise AdminError(str(exc)) from None


@router.post("/credits")
async def set_credits(request: Request) -> dict[str, Any]:
    body = await _json_object(request)
    balance = body.get("balance")
    if isinstance(balance, bool) or not isinstance(balance, (int, float)):
        raise AdminError("balance must be a number")
    try:
        ws = _emulator(request).store.set_credits(
            body.get("workspace_id"), float(balance), bool(body.get("unlimited", False))
        )
    except EmulatorError as exc:
        raise AdminError(f"unknown workspace {body.get('workspace_id')!r}") from exc
    return {"workspace_id": ws.id, "balance": ws.balance, "unlimited": ws.unlimited}


@router.post("/faults")
async def add_fault(request: Request) -> dict[str, Any]:
    body = await _json_object(request)
    try:
        rule = FaultRule(
            operation=str(body.get("operation", "*")),
            kind=body.get("kind"),  # type: ignore[arg-type]
            count=int(body.get("count", 1)),
            status=int(body["status"]) if body.get("status") is not None else None,
            retry_after=str(body["retry_after"]) if body.get("retry_after") is not None else None,
            delay_seconds=float(body["delay_seconds"]) if body.get("delay_seconds") is not None else None,
        )
        rule.check(KNOWN_OPERATIONS)
    except (TypeError, ValueError) as exc:
        raise AdminError(str(exc)) from None
    emulator = _emulator(request)
    emulator.faults.add(rule)
    return {"pending": emulator.faults.pending()}


@router.api_route("/faults", methods=["GET", "DELETE"])
async def pending_faults(request: Request) -> dict[str, Any]:
    """The fault rules not used up yet; DELETE drops them all first."""
    faults = _emulator(request).faults
    if request.method == "DELETE":
        faults.clear()
    return {"pending": faults.pending()}


@router.get("/requests")
async def requests_seen(request: Request) -> dict[str, Any]:
    return _emulator(request).counters.snapshot()


@router.get("/images")
async def image_records(request: Request) -> dict[str, Any]:
    """Internal image records (timestamps as epoch seconds) for tests and latency benchmarks."""
    store = _emulator(request).store
    raw = request.query_params.get("ids")
    ids = [i.strip() for i in raw.split(",") if i.strip()] if raw else list(store.images)
    return {"images": [store.internal_record(store.images[i]) for i in ids if i in store.images]}


@router.post("/images/reschedule")
async def reschedule_images(request: Request) -> dict[str, Any]:
    """Make running images end within ``within_seconds`` from now (``ids``: all when omitted)."""
    body = await _json_object(request)
    try:
        within = float(body.get("within_seconds", 0))
        ids = body.get("ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise ValueError("ids must be a list of image ids")
        if not 0 <= within <= 3600:
            raise ValueError("within_seconds must be within 0..3600")
    except (TypeError, ValueError) as exc:
        raise AdminError(str(exc)) from None
    emulator = _emulator(request)
    changed = emulator.store.reschedule_pending(within, ids)
    emulator.hub.wake_all()  # held long-polls re-read the new end times
    return {"rescheduled": changed}


@router.post("/tokens")
async def mint_token(request: Request) -> dict[str, Any]:
    """Mint a single-use token for the signed upload endpoints (Bloom mints them via its MCP tools)."""
    body = await _json_object(request)
    store = _emulator(request).store
    try:
        token = store.mint_upload_token(str(body.get("kind", "image")), body.get("brand_id"))
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    return {"token": token, "kind": body.get("kind", "image"), "brand_id": body.get("brand_id")}


@router.api_route("/violations", methods=["GET", "DELETE"])
async def violations(request: Request) -> dict[str, Any]:
    """Answers that broke the spec (with ``validate_responses``); DELETE forgets them first."""
    seen = _emulator(request).violations
    if request.method == "DELETE":
        seen.clear()
    return {"violations": [v.to_dict() for v in seen]}


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    return {"ok": True, "waiting": _emulator(request).hub.waiting}


@router.get("/openapi.json")
async def openapi_document() -> dict[str, Any]:
    """Bloom's OpenAPI document (its servers entry points at the real Bloom)."""
    return spec.load_document()
