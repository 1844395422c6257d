"""Bloom's OpenAPI document (``openapi.json``, copied verbatim from Bloom), and what its two readers share.

The client (:mod:`airflow_provider_bloom.client.spec`: input checks before a call) and the emulator
(:mod:`airflow_provider_bloom.emulator.spec`: Bloom's side of the call) read the document each on
their own, on purpose: the input fuzz test holds the client's checks against the emulator's.
They share only what checks nothing: reading the file, and what names an operation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any


def read_document() -> dict[str, Any]:
    """The document, parsed afresh (each reader caches its own copy)."""
    document: dict[str, Any] = json.loads(
        resources.files(__name__).joinpath("openapi.json").read_text("utf-8")
    )
    return document


@dataclass(frozen=True)
class OperationKey:
    """What names one operation: its ``operationId``, HTTP method (upper case) and path template."""

    operation_id: str
    method: str
    path: str
