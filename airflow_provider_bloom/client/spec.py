"""Bloom's OpenAPI document as data, and the request checks derived from it.

The spec ships inside the package (``openapi/openapi.json``, copied verbatim from
Bloom). Everything a request may carry (enums, lengths, ranges, formats,
required fields) is read from it here, so the client never hand-types a limit
that Bloom might change.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.openapi import OperationKey, read_document

DEFAULT_BASE_URL = "https://www.trybloom.ai/api/v1"
OAUTH_TOKEN_PATH = "/api/auth/oauth2/token"
MAX_IDS_PER_CALL = 50
MAX_WAIT_SECONDS = 295
MAX_UPLOAD_BYTES = 10 * 1024 * 1024

#: The paid requests: those never sent twice, because Bloom has no idempotency key and a second
#: send would pay or create again. They are every POST but the read-only ``images.search`` (each
#: creates an image or a brand; five of them also cost credits, see
#: :data:`~airflow_provider_bloom.logic.prices.CHARGED_OPERATIONS`), and the signed logo PUT, whose
#: single-use token a second send would find spent. The other two logo PUTs replace the logo and may
#: be repeated. A paid request is sent again only when it provably never reached Bloom or was
#: answered 429. The emulator counts the same list (its ``paid_posts``).
PAID_OPERATIONS = frozenset(
    {
        "images.generate",
        "images.edit",
        "images.resize",
        "images.removeBackground",
        "images.vectorize",
        "brands.create",
        "images.upload",
        "images.uploadFile",
        "images.uploadFileSigned",
        "brands.uploadLogoFileSigned",
    }
)
#: Signed uploads: a single-use token in the path is the credential, no API key is sent (or expected).
UNAUTHENTICATED_OPERATIONS = frozenset({"images.uploadFileSigned", "brands.uploadLogoFileSigned"})

# \Z, not $: "$" also matches before a trailing newline, so "<uuid>\n" would pass.
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
# RFC 3986: the characters a URI may hold unescaped, and a '%' must start an escape.
_URI_CHAR = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PORT_RE = re.compile(r"\d*\Z")
_CAMEL_RE = re.compile(r"(?<!^)(?=[A-Z])")


def to_snake(name: str) -> str:
    """``brandSessionId`` -> ``brand_session_id`` (the names our methods take)."""
    return _CAMEL_RE.sub("_", name).lower()


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class Operation(OperationKey):
    """One Bloom operation as the spec declares it."""

    path_params: tuple[str, ...]
    query: Mapping[str, dict[str, Any]] = field(repr=False)
    body: Mapping[str, dict[str, Any]] = field(repr=False)
    required_body: frozenset[str]
    content_type: str | None
    responses: Mapping[str, Any] = field(repr=False)

    def argument(self, path_param: str) -> str:
        """The snake_case argument that fills a path parameter (``{id}`` is ``brand_id`` or ``image_id``)."""
        if path_param == "id":
            return "brand_id" if self.path.startswith("/brands") else "image_id"
        return path_param

    @property
    def paid(self) -> bool:
        """Never sent twice (:data:`PAID_OPERATIONS`); not the same as costing credits."""
        return self.operation_id in PAID_OPERATIONS

    @property
    def authenticated(self) -> bool:
        return self.operation_id not in UNAUTHENTICATED_OPERATIONS


@functools.cache
def load_spec() -> dict[str, Any]:
    return read_document()


@functools.cache
def operations() -> dict[str, Operation]:
    ops: dict[str, Operation] = {}
    for path, item in load_spec()["paths"].items():
        for method, op in item.items():
            if method not in {"get", "post", "put", "delete", "patch"}:
                continue
            params = op.get("parameters", [])
            body: dict[str, dict[str, Any]] = {}
            required: frozenset[str] = frozenset()
            content_type = None
            for ctype, content in (op.get("requestBody") or {}).get("content", {}).items():
                content_type = ctype
                body = dict(content["schema"].get("properties", {}))
                required = frozenset(content["schema"].get("required", []))
            ops[op["operationId"]] = Operation(
                operation_id=op["operationId"],
                method=method.upper(),
                path=path,
                path_params=tuple(p["name"] for p in params if p["in"] == "path"),
                query={p["name"]: p.get("schema", {}) for p in params if p["in"] == "query"},
                body=body,
                required_body=required,
                content_type=content_type,
                responses=op.get("responses", {}),
            )
    return ops


def get_operation(operation_id: str) -> Operation:
    try:
        return operations()[operation_id]
    except KeyError:
        raise KeyError(f"Unknown Bloom operation {operation_id!r}") from None


# --------------------------------------------------------------------------- checks


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and _UUID_RE.match(value) is not None


def check_uuid(field_name: str, value: Any) -> str:
    if not is_uuid(value):
        raise BloomInputError(field_name, f"must be a UUID like 3f2b...-...; got {_describe(value)}")
    return value


def _uri_problem(value: str) -> str | None:
    """Why ``value`` is not an absolute http(s) URI as RFC 3986 (Bloom's ``format: uri``) allows, or None."""
    try:
        parsed = urlparse(value)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parsed.scheme.lower() not in {"http", "https"} or not parsed.netloc or not parsed.hostname:
        return "must be an absolute http(s) URL"
    for char in value:
        if not _URI_CHAR.match(char):
            hint = " (percent-encode it, e.g. %20 for a space)" if char.isprintable() else ""
            return f"holds {char!r}, which a URL may not contain unescaped{hint}"
    if _BAD_PERCENT.search(value):
        return "holds a '%' that is not followed by two hex digits"
    if value.count("#") > 1:
        return "holds more than one '#'"
    authority = parsed.netloc
    hostport = authority.rsplit("@", 1)[-1]
    tail = value.split("//", 1)[1][len(authority) :]
    if "[" in tail or "]" in tail:
        return "holds '[' or ']' outside an IPv6 host"
    if hostport.startswith("["):
        literal, _, after = hostport[1:].partition("]")
        if not literal or ":" not in literal or not re.match(r"(:\d*)?\Z", after):
            return "has a malformed IPv6 host"
    else:
        _, _, port = hostport.partition(":")
        if "[" in hostport or "]" in hostport or ":" in port or not _PORT_RE.match(port):
            return "has a malformed host or port"
    return None


def check_url(field_name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BloomInputError(field_name, f"must be an http(s) URL; got {_describe(value)}")
    problem = _uri_problem(value)
    if problem is not None:
        raise BloomInputError(field_name, f"{problem}; got {_describe(value)}")
    return value


def check_text(field_name: str, value: str) -> str:
    """A string must be sendable as UTF-8 (a lone surrogate from a bad decode is not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BloomInputError(
            field_name, f"holds {value[exc.start : exc.end]!r}, which is not valid Unicode text"
        ) from None
    return value


def check_value(field_name: str, value: Any, schema: Mapping[str, Any]) -> Any:
    """Check one value against a (small) JSON-schema fragment from the spec.

    Covers what Bloom's spec uses: anyOf, enum, const, type, string lengths,
    numeric ranges, array sizes and the uuid/uri formats. Returns the value,
    converted where the wire form differs (booleans in the query string).
    """
    if "anyOf" in schema:
        errors: list[BloomInputError] = []
        for option in schema["anyOf"]:
            try:
                return check_value(field_name, value, option)
            except BloomInputError as exc:
                errors.append(exc)
        # Report the most specific option that failed (the first one is the documented shape).
        raise errors[0]
    if "enum" in schema:
        if value not in schema["enum"]:
            allowed = ", ".join(repr(v) for v in schema["enum"])
            raise BloomInputError(field_name, f"must be one of {allowed}; got {_describe(value)}")
        return value
    if "const" in schema and value != schema["const"]:
        raise BloomInputError(field_name, f"must be {schema['const']!r}; got {_describe(value)}")
    kind = schema.get("type")
    if kind == "string":
        if not isinstance(value, str):
            raise BloomInputError(field_name, f"must be a string; got {_describe(value)}")
        check_text(field_name, value)
        lo, hi = schema.get("minLength"), schema.get("maxLength")
        if lo is not None and len(value) < lo:
            raise BloomInputError(field_name, f"must be at least {lo} character(s) long; got {len(value)}")
        if hi is not None and len(value) > hi:
            raise BloomInputError(field_name, f"must be at most {hi} characters long; got {len(value)}")
        if schema.get("format") == "uuid":
            check_uuid(field_name, value)
        elif schema.get("format") == "uri":
            check_url(field_name, value)
    elif kind in {"integer", "number"}:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BloomInputError(field_name, f"must be a number; got {_describe(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise BloomInputError(field_name, f"must be a finite number; got {_describe(value)}")
        if kind == "integer" and not float(value).is_integer():
            raise BloomInputError(field_name, f"must be a whole number; got {_describe(value)}")
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise BloomInputError(field_name, f"must be between {lo} and {hi}; got {_describe(value)}")
        if kind == "integer":
            value = int(value)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise BloomInputError(field_name, f"must be true or false; got {_describe(value)}")
    elif kind == "array":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise BloomInputError(field_name, f"must be a list; got {_describe(value)}")
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        if lo is not None and len(value) < lo:
            raise BloomInputError(field_name, f"must hold at least {lo} item(s); got {len(value)}")
        if hi is not None and len(value) > hi:
            raise BloomInputError(field_name, f"must hold at most {hi} items; got {len(value)}")
        items = schema.get("items", {})
        value = [check_value(f"{field_name}[{i}]", v, items) for i, v in enumerate(value)]
    return value


def check_ids(field_name: str, ids: Any, *, minimum: int = 1, maximum: int = MAX_IDS_PER_CALL) -> list[str]:
    """A list (or comma-separated string) of image ids: UUIDs, ``minimum``..``maximum`` of them."""
    if isinstance(ids, str):
        ids = [part.strip() for part in ids.split(",") if part.strip()]
    if not isinstance(ids, (list, tuple)):
        raise BloomInputError(field_name, f"must be a list of image ids; got {_describe(ids)}")
    if not minimum <= len(ids) <= maximum:
        raise BloomInputError(
            field_name, f"must hold between {minimum} and {maximum} ids per call; got {len(ids)}"
        )
    return [check_uuid(f"{field_name}[{i}]", v) for i, v in enumerate(ids)]


def chunked(items: list[str], size: int = MAX_IDS_PER_CALL) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --------------------------------------------------------------------------- answers


def _data_schema(op: Operation, status: int) -> Mapping[str, Any] | None:
    responses = op.responses
    answer = responses.get(str(status)) or next(
        (r for code, r in responses.items() if code.startswith("2")), None
    )
    if not isinstance(answer, Mapping):
        return None
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    data = schema.get("properties", {}).get("data")
    return data if isinstance(data, Mapping) else None


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "number": (int, float),
    "integer": (int,),
}


def _shape_problem(where: str, value: Any, schema: Mapping[str, Any]) -> str | None:
    """Why ``value`` breaks the shape the spec promises, or None.

    Checks what the client relies on: required fields, JSON types and the
    ``uuid`` format of ids (an id goes into XCom, file names and links). Enum
    values are not checked, so a new status Bloom adds is not a failure.
    """
    if "anyOf" in schema:
        problems = [_shape_problem(where, value, option) for option in schema["anyOf"]]
        return None if any(p is None for p in problems) else problems[0]
    kind = schema.get("type")
    if kind == "null":
        return None if value is None else f"{where} must be null"
    if kind in _JSON_TYPES:
        if not isinstance(value, _JSON_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
            return f"{where} must be a{'n' if kind[0] in 'aeiou' else ''} {kind}; got {_describe(value)}"
    if kind == "string" and schema.get("format") == "uuid" and not is_uuid(value):
        return f"{where} must be a UUID; got {_describe(value)}"
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return f"{where} must be an object; got {_describe(value)}"
        for name in schema.get("required", []):
            if name not in value:
                return f"{where} has no {name!r}"
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                problem = _shape_problem(f"{where}.{name}", value[name], sub)
                if problem:
                    return problem
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            return f"{where} must hold at least {schema['minItems']} item(s)"
        for i, item in enumerate(value):
            problem = _shape_problem(f"{where}[{i}]", item, schema.get("items", {}))
            if problem:
                return problem
    return None


def answer_problem(op: Operation, status: int, data: Any) -> str | None:
    """Why a success answer's ``data`` is not what Bloom's spec promises for ``op``, or None."""
    schema = _data_schema(op, status)
    if schema is None:
        return None if isinstance(data, dict) else "data is not an object"
    return _shape_problem("data", data, schema)
