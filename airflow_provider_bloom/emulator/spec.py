"""Bloom's OpenAPI document, indexed for the emulator: routes, input schemas, response schemas.

The document is the package's ``openapi/openapi.json`` loaded at runtime; nothing here
repeats a limit, an enum or an error code by hand.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from airflow_provider_bloom.client.spec import PAID_OPERATIONS, UNAUTHENTICATED_OPERATIONS
from airflow_provider_bloom.openapi import OperationKey, read_document

API_PREFIX = "/api/v1"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")

# \Z, not $: "$" also matches before a trailing newline.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(.*)$", re.DOTALL)
_URI_CHARS = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*\Z")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PORT = re.compile(r"^\d*\Z")


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def is_uri(value: str) -> bool:
    """An absolute URI per RFC 3986 (scheme, allowed characters, sane authority)."""
    match = _SCHEME.match(value)
    if not match or not _URI_CHARS.match(match.group(2)) or _BAD_PERCENT.search(value):
        return False
    rest = match.group(2)
    if rest.count("#") > 1:
        return False
    if rest.startswith("//"):
        authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
        hostport = authority.rsplit("@", 1)[-1]
        tail = rest[2 + len(authority) :]
        if "[" in tail or "]" in tail:
            return False
        if hostport.startswith("["):
            literal, _, after = hostport[1:].partition("]")
            return bool(literal) and ":" in literal and bool(re.match(r"^(:\d*)?$", after))
        host, _, port = hostport.partition(":")
        return "[" not in hostport and "]" not in hostport and ":" not in port and bool(_PORT.match(port))
    return "[" not in rest and "]" not in rest


def is_datetime(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value or "t" in value


def _strings_only(check: Callable[[str], bool]) -> Callable[[object], bool]:
    """Formats apply to strings; other types are the ``type`` keyword's business."""
    return lambda instance: not isinstance(instance, str) or check(instance)


FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
FORMAT_CHECKER.checks("uuid")(_strings_only(is_uuid))
FORMAT_CHECKER.checks("uri")(_strings_only(is_uri))
FORMAT_CHECKER.checks("date-time")(_strings_only(is_datetime))


def _validator(schema: Mapping[str, Any]) -> Validator:
    return jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


class _Validated:
    """A spec part with a JSON schema, and that schema's validator (built on first use)."""

    schema: Mapping[str, Any]

    @functools.cached_property
    def validator(self) -> Validator:
        return _validator(self.schema)


@dataclass(frozen=True)
class ParamSpec(_Validated):
    name: str
    location: str
    required: bool
    allow_empty: bool
    schema: Mapping[str, Any] = field(repr=False)

    @property
    def is_integer(self) -> bool:
        return self.schema.get("type") == "integer"


@dataclass(frozen=True)
class BodySpec(_Validated):
    media_type: str
    required: bool
    schema: Mapping[str, Any] = field(repr=False)

    @property
    def is_multipart(self) -> bool:
        return self.media_type == "multipart/form-data"


@dataclass(frozen=True)
class OperationSpec(OperationKey):
    params: tuple[ParamSpec, ...]
    body: BodySpec | None
    responses: Mapping[int, Mapping[str, Any]] = field(repr=False)

    @property
    def paid(self) -> bool:
        """A request the client never sends twice (counted as ``paid_posts``): the client's own list."""
        return self.operation_id in PAID_OPERATIONS

    @property
    def signed(self) -> bool:
        """The credential is a single-use token in the path, not an API key."""
        return self.operation_id in UNAUTHENTICATED_OPERATIONS

    @functools.cached_property
    def defined_errors(self) -> dict[int, dict[str, str]]:
        """status -> {code: default message} of the spec's ``defined: true`` errors."""
        out: dict[int, dict[str, str]] = {}
        for status, schema in self.responses.items():
            for branch in schema.get("oneOf", []):
                props = branch.get("properties", {})
                if props.get("defined", {}).get("const") is True:
                    code = props["code"]["const"]
                    out.setdefault(status, {})[code] = props.get("message", {}).get("default", code)
        return out

    def is_defined(self, status: int, code: str) -> bool:
        return code in self.defined_errors.get(status, {})

    def default_message(self, status: int, code: str) -> str | None:
        return self.defined_errors.get(status, {}).get(code)

    def response_validator(self, status: int) -> Validator | None:
        return _response_validators(self.operation_id).get(status)


@dataclass(frozen=True)
class RouteMatch:
    """The spec path a request maps to: its operation for the method, or the methods allowed."""

    template: str
    operation: OperationSpec | None
    path_params: dict[str, str]
    allowed: tuple[str, ...]


@dataclass(frozen=True)
class _Template:
    path: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    specificity: tuple[int, ...]
    operations: dict[str, OperationSpec]


@functools.cache
def load_document() -> dict[str, Any]:
    return read_document()


def _operation(path: str, method: str, raw: Mapping[str, Any]) -> OperationSpec:
    params = tuple(
        ParamSpec(
            name=p["name"],
            location=p["in"],
            required=bool(p.get("required", p["in"] == "path")),
            allow_empty=bool(p.get("allowEmptyValue", False)),
            schema=p.get("schema", {}),
        )
        for p in raw.get("parameters", [])
    )
    body = None
    request_body = raw.get("requestBody")
    if request_body:
        media_type, content = next(iter(request_body["content"].items()))
        body = BodySpec(media_type, bool(request_body.get("required")), content.get("schema", {}))
    responses = {
        int(status): response.get("content", {}).get("application/json", {}).get("schema", {})
        for status, response in raw.get("responses", {}).items()
        if status.isdigit()
    }
    return OperationSpec(raw["operationId"], method.upper(), path, params, body, responses)


@functools.cache
def operations() -> dict[str, OperationSpec]:
    ops: dict[str, OperationSpec] = {}
    for path, item in load_document()["paths"].items():
        for method, raw in item.items():
            if method in HTTP_METHODS:
                op = _operation(path, method, raw)
                ops[op.operation_id] = op
    return ops


@functools.cache
def _templates() -> tuple[_Template, ...]:
    by_path: dict[str, dict[str, OperationSpec]] = {}
    for op in operations().values():
        by_path.setdefault(op.path, {})[op.method] = op
    templates = []
    for path, ops in by_path.items():
        segments = path.strip("/").split("/")
        names = tuple(s[1:-1] for s in segments if s.startswith("{"))
        pattern = "".join("/([^/]+)" if s.startswith("{") else "/" + re.escape(s) for s in segments)
        specificity = tuple(1 if s.startswith("{") else 0 for s in segments)
        templates.append(_Template(path, re.compile(f"^{pattern}/?\\Z"), names, specificity, ops))
    # Literal segments win over parameters (``/images/search`` before ``/images/{id}``).
    return tuple(sorted(templates, key=lambda t: t.specificity))


def match(method: str, path: str) -> RouteMatch | None:
    """Resolve ``path`` (without the ``/api/v1`` prefix) the way Bloom's router would."""
    for template in _templates():
        found = template.regex.match(path)
        if found:
            return RouteMatch(
                template=template.path,
                operation=template.operations.get(method.upper()),
                path_params=dict(zip(template.names, found.groups(), strict=True)),
                allowed=tuple(sorted(template.operations)),
            )
    return None


def route_order() -> Iterator[OperationSpec]:
    """Operations in routing order (most specific path first)."""
    for template in _templates():
        yield from template.operations.values()


@functools.cache
def _response_validators(operation_id: str) -> dict[int, Validator]:
    return {status: _validator(schema) for status, schema in operations()[operation_id].responses.items()}


#: What a response of an undeclared error status must still look like (the spec's undefined branch).
GENERIC_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "defined": {"const": False},
        "code": {"type": "string"},
        "status": {"type": "number"},
        "message": {"type": "string"},
        "data": {},
    },
    "required": ["defined", "code", "status", "message"],
}
GENERIC_ERROR_VALIDATOR = _validator(GENERIC_ERROR_SCHEMA)


def first_error(validator: Validator, instance: Any) -> str | None:
    error = best_match(validator.iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"
