"""Check a request's parameters and body against the operation's schemas in the spec.

Failures become Bloom's undefined 400 ``BAD_REQUEST`` (with oRPC-style ``data.issues``),
or the spec's own code where one names the problem (``INVALID_URL``,
``REFERENCE_LIMIT_EXCEEDED``, ``INVALID_LOGO``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError, best_match
from starlette.datastructures import QueryParams, UploadFile
from starlette.requests import Request

from airflow_provider_bloom.emulator.errors import EmulatorError, bad_request
from airflow_provider_bloom.emulator.spec import OperationSpec, ParamSpec

_INTEGER = re.compile(r"^-?\d+\Z")

#: (operation, field, JSON-schema keyword) -> the spec's code for that failure.
_SPECIFIC_CODES: dict[tuple[str, str, str], str] = {
    ("images.generate", "referenceImageIds", "maxItems"): "REFERENCE_LIMIT_EXCEEDED",
    ("images.edit", "referenceImageIds", "maxItems"): "REFERENCE_LIMIT_EXCEEDED",
    ("brands.create", "url", "format"): "INVALID_URL",
    ("brands.create", "logoUrl", "format"): "INVALID_URL",
    ("images.upload", "imageUrl", "format"): "INVALID_URL",
    ("brands.updateLogo", "logoUrl", "format"): "INVALID_LOGO",
}


@dataclass
class UploadedFile:
    filename: str | None
    data: bytes
    #: The part was larger than the limit (``data`` then holds only its start).
    too_large: bool = False


def _issue(path: list[Any], message: str) -> dict[str, Any]:
    return {"path": path, "message": message}


def _raise_schema_error(op: OperationSpec, error: ValidationError, prefix: list[Any]) -> None:
    path = prefix + list(error.absolute_path)
    field = str(path[0]) if path else ""
    code = _SPECIFIC_CODES.get((op.operation_id, field, str(error.validator)))
    if code is not None:
        raise EmulatorError(400, code, data={"issues": [_issue(path, error.message)]})
    raise bad_request("Input validation failed", [_issue(path, error.message)])


def _coerce(param: ParamSpec, raw: str) -> Any:
    if param.is_integer:
        if not _INTEGER.match(raw.strip()):
            raise bad_request("Input validation failed", [_issue([param.name], f"{raw!r} is not an integer")])
        return int(raw)
    return raw


def check_params(op: OperationSpec, path_params: Mapping[str, str], query: QueryParams) -> dict[str, Any]:
    """Validated path and query values (only those present), integers converted.

    A query parameter the spec declares as a single value may appear only once.
    """
    values: dict[str, Any] = {}
    for param in op.params:
        if param.location == "query":
            repeated = query.getlist(param.name)
            if len(repeated) > 1:
                raise bad_request("Input validation failed", [_issue([param.name], "must be given once")])
            raw = repeated[0] if repeated else None
        else:
            raw = path_params.get(param.name) if param.location == "path" else None
        if raw is None or (raw == "" and param.allow_empty):
            if param.required and raw is None:
                raise bad_request("Input validation failed", [_issue([param.name], "is required")])
            continue
        value = _coerce(param, raw)
        error = best_match(param.validator.iter_errors(value))
        if error is not None:
            _raise_schema_error(op, error, [param.name])
        values[param.name] = value
    return values


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def check_json_body(op: OperationSpec, raw: bytes) -> dict[str, Any]:
    """The parsed and validated JSON body (``{}`` when an optional body is absent)."""
    assert op.body is not None
    if not raw.strip():
        if op.body.required:
            raise bad_request("Request body is required", [_issue([], "is required")])
        return {}
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("Malformed JSON body", [_issue([], str(exc))]) from None
    error = best_match(op.body.validator.iter_errors(body))
    if error is not None:
        _raise_schema_error(op, error, [])
    assert isinstance(body, dict)
    return body


async def read_form(request: Request, max_file_bytes: int) -> dict[str, str | UploadedFile]:
    """The multipart fields; file parts are read up to ``max_file_bytes`` + 1 bytes."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise bad_request("Expected a multipart/form-data body", [_issue([], "wrong content type")])
    try:
        form = await request.form(max_files=10, max_fields=50)
    except Exception as exc:  # multipart parser errors come in several types
        raise bad_request("Malformed multipart body", [_issue([], str(exc))]) from None
    fields: dict[str, str | UploadedFile] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read(max_file_bytes + 1)
            fields[name] = UploadedFile(value.filename, data[:max_file_bytes], len(data) > max_file_bytes)
            await value.close()
        else:
            fields[name] = value
    return fields


def check_form(op: OperationSpec, fields: Mapping[str, str | UploadedFile]) -> dict[str, Any]:
    """Validated multipart fields; a ``file`` sent as a plain field becomes a file of its text."""
    assert op.body is not None
    out: dict[str, Any] = dict(fields)
    file = out.get("file")
    if isinstance(file, str):
        out["file"] = UploadedFile(None, file.encode("utf-8"))
    instance = {k: ("<file>" if isinstance(v, UploadedFile) else v) for k, v in out.items()}
    error = best_match(op.body.validator.iter_errors(instance))
    if error is not None:
        _raise_schema_error(op, error, [])
    return out
