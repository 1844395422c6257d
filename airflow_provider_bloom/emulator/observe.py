"""What the emulator saw: request counters, spec violations, the per-request log line."""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("airflow_provider_bloom.emulator")

_SIGNED_TOKEN = re.compile(r"(/signed/)[^/]+")
#: Distinct keys counted one by one in ``by_key``; the rest share :data:`OTHER_KEYS`.
MAX_TRACKED_KEYS = 1_000
OTHER_KEYS = "key:other"


def key_fingerprint(key: str) -> str:
    """A stable, non-reversible name for a credential: ``key:`` + 12 hex digits of its SHA-256."""
    return "key:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def loggable_path(path: str) -> str:
    """The path with signed-upload tokens (credentials) masked; query strings are never logged."""
    return _SIGNED_TOKEN.sub(r"\1***", path)


def log_request(method: str, path: str, status: int | str, millis: float) -> None:
    logger.info("%s %s %s %.1fms", method, loggable_path(path), status, millis)


@dataclass
class Fetches:
    """Requests for stored files (or their redirects), and how many carried credentials (none should)."""

    total: int = 0
    with_credentials: int = 0

    def record(self, with_credentials: bool) -> None:
        self.total += 1
        if with_credentials:
            self.with_credentials += 1


@dataclass
class Counters:
    total: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    by_key: Counter[str] = field(default_factory=Counter)
    by_operation_status: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    paid_posts: int = 0
    paid_posts_effective: int = 0
    files: Fetches = field(default_factory=Fetches)
    redirects: Fetches = field(default_factory=Fetches)

    def record(self, operation: str, fingerprint: str | None, paid: bool) -> None:
        self.total += 1
        self.by_operation[operation] += 1
        if fingerprint is not None:
            # Bounded: keys beyond the first MAX_TRACKED_KEYS are counted together.
            if fingerprint not in self.by_key and len(self.by_key) >= MAX_TRACKED_KEYS:
                fingerprint = OTHER_KEYS
            self.by_key[fingerprint] += 1
        if paid:
            self.paid_posts += 1

    def record_outcome(self, operation: str, outcome: int | str, paid_effect: bool) -> None:
        """``outcome``: the status the handler answered, or ``"cut"`` when no response was sent."""
        self.by_operation_status[operation][str(outcome)] += 1
        if paid_effect:
            self.paid_posts_effective += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_operation": dict(self.by_operation),
            "by_key": dict(self.by_key),
            "by_operation_status": {op: dict(c) for op, c in self.by_operation_status.items()},
            "paid_posts": self.paid_posts,
            "paid_posts_effective": self.paid_posts_effective,
            "file_requests": self.files.total,
            "file_requests_with_credentials": self.files.with_credentials,
            "redirect_requests": self.redirects.total,
            "redirect_requests_with_credentials": self.redirects.with_credentials,
        }


@dataclass
class Violation:
    operation: str
    method: str
    path: str
    status: int
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "method": self.method,
            "path": loggable_path(self.path),
            "status": self.status,
            "problem": self.problem,
        }
