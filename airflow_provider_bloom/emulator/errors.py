"""The emulator's error answer (EmulatorError, not the provider's BloomError): one exception type,
rendered in the spec's flat shape or the prose's nested one."""

from __future__ import annotations

import http
import json
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_bloom.emulator.config import ErrorEnvelope


@dataclass
class EmulatorError(Exception):
    """An error answer. ``message=None`` takes the spec's default message for the code."""

    status: int
    code: str
    message: str | None = None
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.code}: {self.message or ''}")


def bad_request(message: str, issues: list[dict[str, Any]] | None = None) -> EmulatorError:
    """An input-validation failure (Bloom's oRPC layer answers these as undefined ``BAD_REQUEST``)."""
    return EmulatorError(400, "BAD_REQUEST", message, {"issues": issues or []})


def generic_code(status: int) -> str:
    """``503`` -> ``SERVICE_UNAVAILABLE``: the code for statuses the spec defines no code for."""
    try:
        return http.HTTPStatus(status).name
    except ValueError:
        return "ERROR"


def flat_body(error: EmulatorError, *, defined: bool, message: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "defined": defined,
        "code": error.code,
        "status": error.status,
        "message": message,
    }
    if error.data is not None:
        body["data"] = error.data
    return body


def envelope(flat: dict[str, Any], style: ErrorEnvelope) -> dict[str, Any]:
    """The flat body as sent in ``style``: unchanged, or ``{"error": {...}}`` without ``defined``."""
    if style == "flat":
        return flat
    return {"error": {k: v for k, v in flat.items() if k != "defined"}}


def unwrap(body: Any) -> Any:
    """The inverse of :func:`envelope` for a nested body (``defined`` cannot be recovered)."""
    if isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict):
        return body["error"]
    return body


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("ascii")
