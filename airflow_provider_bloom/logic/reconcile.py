"""Find what a paid POST created when Bloom's answer to it was lost.

Bloom has no idempotency key, so a paid POST whose answer is lost (connection cut after Bloom
acted, a read timeout, a truncated or corrupt answer, a 5xx after the request went out) is
never sent again on a guess. Instead, Bloom's lists are searched for what the request created:

* images (generate, edit): ``GET /images`` filtered by brand and action type, newest first.
  A record matches when it has the request's prompt, aspect ratio and action type, was created
  inside the request's time window (in Bloom's clock, see :func:`bloom_window`) and no other
  request of this task already claimed it. The matches must form exactly one variant group of
  exactly the requested size; anything else is uncertain.
* brands (``POST /brands``): ``GET /brands``, the same URL created inside the window, exactly one.

An uncertain result (nothing found, several groups, a group of the wrong size, a result that
carries nothing tying it to its request) raises :class:`ReconcileError` listing the candidates
(ids, ``createdAt``) so a person can decide; the task then fails without retries.

This module is the decision logic (no I/O of its own); the thin synchronous caller the operators use
is :class:`airflow_provider_bloom.tasks.reconciler.Reconciler`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar

from airflow_provider_bloom.exceptions import MAYBE_CHARGED_HINT, BloomError, ReconcileError

#: Bloom's clocks (the one stamping ``createdAt`` and the one sending ``Date``) may differ by this.
DEFAULT_TOLERANCE = 1.0
#: How long to keep looking when Bloom's list does not show the records yet.
DEFAULT_RECONCILE_TIMEOUT = 30.0
PAGE_SIZE = 100
MAX_PAGES = 5
SHOWN_CANDIDATES = 20

Outcome = Literal["match", "none", "partial", "ambiguous"]
P = TypeVar("P")

# --------------------------------------------------------------------------- time


@dataclass(frozen=True)
class Attempt:
    """When (``time.monotonic()``) the paid POST went out and when its failure came back.

    ``open_ended``: the answer was lost to a read timeout, so Bloom may still have been working
    on it after the failure; the window then has no upper bound.
    """

    sent: float
    failed: float
    open_ended: bool = False


@dataclass(frozen=True)
class ServerTime:
    """Bloom's ``Date`` header (epoch seconds, whole) and when the exchange carrying it happened.

    ``sent``/``received`` are ``time.monotonic()`` values of that request and its answer.
    """

    date: float
    sent: float
    received: float


def parse_http_date(value: str | None) -> float | None:
    """An RFC 9110 ``Date`` header as epoch seconds, or None."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def parse_created_at(value: Any) -> float | None:
    """Bloom's ``createdAt`` (ISO 8601, ``Z``) as epoch seconds, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def bloom_window(attempt: Attempt, server: ServerTime, tolerance: float) -> tuple[float, float | None]:
    """The interval of Bloom's clock in which the lost request can have created records.

    Only differences of this machine's monotonic clock are used, so its wall clock may be wrong:
    ``Date`` (whole seconds) was stamped between ``server.sent`` and ``server.received``, hence at
    the moment the POST went out Bloom's clock read at least ``date - (received - sent_post)``,
    and when the failure came back at most ``date + 1 - (sent - failed)``. ``tolerance`` widens
    both ends (Bloom's own clocks may differ; ``createdAt`` is cut to milliseconds).
    """
    lower = server.date - (server.received - attempt.sent) - tolerance
    if attempt.open_ended:
        return lower, None
    upper = server.date + 1.0 - (server.sent - attempt.failed) + tolerance
    return lower, upper


def in_window(created: float | None, window: tuple[float, float | None]) -> bool:
    lower, upper = window
    return created is not None and created >= lower and (upper is None or created <= upper)


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageQuery:
    """What a lost image request would have created."""

    operation: str
    action_type: str
    #: The brand the request went to (None: any brand).
    brand_session_id: str | None
    count: int = 1
    prompt: str | None = None
    aspect_ratio: str | None = None
    #: Ids already known to belong to something else (earlier results of this task).
    exclude: frozenset[str] = frozenset()
    #: Why a match can never be certain for this request (post-processing results), or None.
    untraceable: str | None = None


@dataclass
class Decision:
    outcome: Outcome
    #: The matching records (for "match": the adopted group, oldest first).
    records: list[Mapping[str, Any]] = field(default_factory=list)
    reason: str = ""

    @property
    def ids(self) -> list[str]:
        return [str(r["id"]) for r in self.records]


def _group_key(record: Mapping[str, Any]) -> str:
    return str(record.get("variantGroupId") or record["id"])


def _oldest_first(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(records, key=lambda r: (parse_created_at(r.get("createdAt")) or 0.0, str(r.get("id"))))


def image_candidates(
    records: Iterable[Mapping[str, Any]], query: ImageQuery, window: tuple[float, float | None]
) -> list[Mapping[str, Any]]:
    """Records that could be what the lost request created (before counting groups)."""
    out = []
    for record in records:
        if not record.get("id") or str(record["id"]) in query.exclude:
            continue
        if record.get("actionType") != query.action_type:
            continue
        brand = record.get("brandSessionId")
        if query.brand_session_id is not None and brand not in (None, query.brand_session_id):
            continue
        if query.prompt is not None and record.get("prompt") != query.prompt:
            continue
        if query.aspect_ratio is not None and record.get("aspectRatio") != query.aspect_ratio:
            continue
        if not in_window(parse_created_at(record.get("createdAt")), window):
            continue
        out.append(record)
    return out


def decide_images(candidates: Sequence[Mapping[str, Any]], query: ImageQuery) -> Decision:
    """``match`` only for exactly one group of exactly ``query.count`` records."""
    if not candidates:
        return Decision("none", [], "no image matching the request was listed")
    if query.untraceable:
        return Decision("ambiguous", list(candidates), query.untraceable)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in candidates:
        groups.setdefault(_group_key(record), []).append(record)
    if len(groups) > 1:
        return Decision(
            "ambiguous",
            list(candidates),
            f"{len(groups)} groups of images match the request (another task may have sent the same "
            "request at the same time); which one is this task's cannot be told",
        )
    (group,) = groups.values()
    if len(group) < query.count:
        return Decision(
            "partial", group, f"only {len(group)} of the {query.count} requested images are listed"
        )
    if len(group) > query.count:
        return Decision(
            "ambiguous",
            group,
            f"the matching group holds {len(group)} images but the request asked for {query.count}",
        )
    return Decision("match", _oldest_first(group))


def describe(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Candidates as a person needs them to decide: id, createdAt, group, status."""
    shown = []
    for record in list(records)[:SHOWN_CANDIDATES]:
        item = {"id": record.get("id"), "createdAt": record.get("createdAt")}
        for name in ("variantGroupId", "status", "url"):
            if record.get(name) is not None:
                item[name] = record.get(name)
        shown.append(item)
    return shown


# --------------------------------------------------------------------------- brands


def brand_candidates(
    brands: Iterable[Mapping[str, Any]],
    url: str,
    workspace_id: str | None,
    window: tuple[float, float | None],
) -> list[Mapping[str, Any]]:
    return [
        b
        for b in brands
        if b.get("url") == url
        and (workspace_id is None or b.get("workspaceId") == workspace_id)
        and in_window(parse_created_at(b.get("createdAt")), window)
    ]


def decide_brands(candidates: Sequence[Mapping[str, Any]]) -> Decision:
    if not candidates:
        return Decision("none", [], "no brand with this URL was listed")
    if len(candidates) > 1:
        return Decision(
            "ambiguous", list(candidates), f"{len(candidates)} brands with this URL were created then"
        )
    return Decision("match", list(candidates))


# --------------------------------------------------------------------------- errors


def uncertain(
    operation: str,
    lost: BaseException,
    decision: Decision,
    window: tuple[float, float | None] | None,
    looked: float,
) -> ReconcileError:
    shown = describe(decision.records)
    span = ""
    if window is not None:
        lower, upper = window
        end = "now" if upper is None else _iso(upper)
        span = f" created between {_iso(lower)} and {end} (Bloom's clock)"
    listing = f" Candidates{span}: {shown}." if shown else f" Nothing matching was found{span}."
    cause = str(lost).replace(f". {MAYBE_CHARGED_HINT}", "")
    message = (
        f"Bloom's answer to {operation} was lost ({cause}); Bloom may have done the work and charged "
        f"for it. Looked for what it created for {looked:.1f}s: {decision.reason}.{listing} "
        "Not sent again (Bloom has no idempotency key): check these in Bloom, then pass the right ids "
        "on downstream or re-run the task."
    )
    return ReconcileError(message, shown)


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def is_open_ended(exc: BaseException) -> bool:
    """True when the answer was lost to a read timeout (Bloom may still be working)."""
    seen: BaseException | None = exc
    while seen is not None:
        if "Timeout" in type(seen).__name__ and "Connect" not in type(seen).__name__:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def answer_lost(exc: BaseException) -> bool:
    """The request went out and its answer was lost: the only errors reconciliation is for."""
    return isinstance(exc, BloomError) and exc.maybe_charged


# --------------------------------------------------------------------------- walking the lists


class IncompleteListing(Exception):
    """More records were created since the lost request than a lookup reads: nothing can be adopted."""


def limited_pages(list_page: Callable[..., P]) -> Callable[..., P]:
    """Wrap a list operation so that asking it for more than :data:`MAX_PAGES` pages raises
    :class:`IncompleteListing` instead of sending the request: a lookup reads at most that many."""
    asked = itertools.count(1)

    def page(**filters: Any) -> P:
        if next(asked) > MAX_PAGES:
            raise IncompleteListing(
                f"more than {MAX_PAGES * PAGE_SIZE} records were created since the request"
            )
        return list_page(**filters)

    return page


def fetch_until_window(
    fetch: Callable[[], Iterator[Mapping[str, Any]]], lower: Callable[[], float]
) -> list[Mapping[str, Any]]:
    """Records newest first, down to the first one created before the window opens."""
    out: list[Mapping[str, Any]] = []
    for record in fetch():
        created = parse_created_at(record.get("createdAt"))
        if created is not None and created < lower():
            break
        out.append(record)
    return out


__all__ = [
    "Attempt",
    "Decision",
    "ImageQuery",
    "IncompleteListing",
    "ReconcileError",
    "ServerTime",
    "answer_lost",
    "bloom_window",
    "brand_candidates",
    "decide_brands",
    "decide_images",
    "fetch_until_window",
    "image_candidates",
    "is_open_ended",
    "limited_pages",
]
