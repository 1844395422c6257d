"""The rows of a batch: read from a list, a CSV or a JSON Lines text; checked before anything is sent.

A row is a dict. The fields a Bloom operation takes (for a generation: ``prompt``, ``aspect_ratio``,
``image_size``, ``model``, ``variant_count``, ``reference_image_ids``, ``brand_session_id``) form its
request; every other column (``sku``, ``channel``...) is the user's own and is carried through to the
manifest untouched. Text from a CSV is read the way a person writes it: an empty cell means "not
given", ``variant_count`` may be digits, ``reference_image_ids`` a JSON list or ids separated by
commas, semicolons or spaces.

Every row is checked against Bloom's spec by a caller-supplied ``check`` (the client's ``prepare``);
the problems of all rows are reported together (:class:`BatchInputError`), naming row and field, so a
user fixes a file in one pass and nothing is spent on a batch that holds a bad row.

Prices are :func:`airflow_provider_bloom.logic.prices.credits_for` (the provider's one price list).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from airflow_provider_bloom.exceptions import BloomInputError

#: The request fields of a generation row (the generate operator's arguments).
GENERATE_FIELDS = (
    "prompt",
    "aspect_ratio",
    "image_size",
    "model",
    "variant_count",
    "reference_image_ids",
    "brand_session_id",
)
#: How many problems one error message lists (the rest are counted).
SHOWN_PROBLEMS = 50
T = TypeVar("T")
R = TypeVar("R")
_ID_SEPARATORS = re.compile(r"[\s,;]+")


class BatchInputError(BloomInputError):
    """Rows of a batch that cannot be sent: every problem, by row number and field."""

    def __init__(self, problems: Sequence[tuple[int, str, str]], total: int, source: str = "rows") -> None:
        self.problems = list(problems)
        shown = "; ".join(
            f"row {row}: {field} {message}" for row, field, message in problems[:SHOWN_PROBLEMS]
        )
        more = len(problems) - SHOWN_PROBLEMS
        rows = len({row for row, _, _ in problems})
        text = (
            f"{rows} of {total} row(s) cannot be sent ({shown}"
            + (f"; and {more} more" if more > 0 else "")
            + "). Nothing was sent to Bloom."
        )
        super().__init__(source, text)


def rows_from_text(text: str, name: str) -> list[dict[str, Any]]:
    """The rows of a CSV (header line first) or JSON Lines text; ``name`` (a file name) picks the format."""
    lower = name.lower().rsplit("?", 1)[0]
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        stripped = text.lstrip()
        if lower.endswith(".json") and stripped.startswith("["):
            rows = json.loads(stripped)
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise BloomInputError("rows", f"{name}: a JSON file must hold a list of objects")
            return rows
        out = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise BloomInputError("rows", f"{name} line {number} is not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise BloomInputError("rows", f"{name} line {number} is not a JSON object")
            out.append(row)
        return out
    if lower.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise BloomInputError("rows", f"{name}: no header line")
        return [{k: v for k, v in row.items() if k is not None} for row in reader]
    raise BloomInputError("rows", f"{name}: unknown format; use a .csv, .jsonl (or .ndjson) or .json file")


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def normalize(name: str, value: Any) -> Any:
    """One request field as a person writes it in a file, made into what Bloom's spec expects."""
    value = _cell(value)
    if value is None:
        return None
    if name == "variant_count" and isinstance(value, str) and value.isdigit():
        return int(value)
    if name == "reference_image_ids":
        if isinstance(value, str):
            if value.startswith("["):
                try:
                    return json.loads(value)
                except ValueError:
                    return value
            return [part for part in _ID_SEPARATORS.split(value) if part]
        if isinstance(value, (list, tuple)):
            return list(value) or None
    return value


def request_of(
    row: Mapping[str, Any], fields: Sequence[str], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The request fields of ``row`` (``defaults`` fill what the row leaves empty); None is left out."""
    out: dict[str, Any] = {}
    for name in fields:
        value = normalize(name, row.get(name))
        if value is None and defaults:
            value = normalize(name, defaults.get(name))
        if value is not None:
            out[name] = value
    return out


def check_rows(rows: Sequence[T], check: Callable[[int, T], R], *, source: str = "rows") -> list[R]:
    """Call ``check(index, row)`` for every row and return its results, or raise every problem at once.

    ``check`` raises :class:`BloomInputError` (naming the field) for a row Bloom would refuse.
    Rows are numbered from 1 in the message (row 1 is the first data row: line 2 of a CSV).
    """
    if not rows:
        raise BloomInputError(source, "holds no rows")
    problems: list[tuple[int, str, str]] = []
    out: list[R] = []
    for index, row in enumerate(rows):
        try:
            out.append(check(index, row))
        except BloomInputError as exc:
            problems.append((index + 1, exc.field, exc.problem))
    if problems:
        raise BatchInputError(problems, len(rows), source)
    return out


__all__ = [
    "GENERATE_FIELDS",
    "BatchInputError",
    "check_rows",
    "normalize",
    "request_of",
    "rows_from_text",
]
