"""The reviewer's answer: the button and the form read into decisions, the task's result, and the
``review`` field of each manifest record.

An answer that cannot be applied (an unknown image, an edit without words, an image both rejected and
sent to edit...) raises :class:`~airflow_provider_bloom.exceptions.BloomReviewAnswerError`: nothing is
decided, and a retry asks again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_bloom.exceptions import BloomReviewAnswerError
from airflow_provider_bloom.logic.batch.manifest import completed_images

APPROVE_ALL = "Approve all"
REJECT_ALL = "Reject all"
SUBMIT = "Submit per-image decisions"
OPTIONS = [APPROVE_ALL, REJECT_ALL, SUBMIT]
DECISIONS = ("approved", "rejected", "edit_requested")
TIMEOUT_REASON = "no answer within the review's response_timeout"
_LINE = re.compile(r"^\s*#?\s*(?P<key>[^:\s]+)\s*(?::\s*(?P<text>.*))?$")


def parse_lines(text: Any, field: str) -> list[tuple[str, str | None]]:
    """``"key: text"`` lines of a form field (blank lines skipped)."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise BloomReviewAnswerError(f"The review's {field!r} field must be text; got {type(text).__name__}")
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise BloomReviewAnswerError(
                f"The review's {field!r} field has a line that is not '<# or id>: <text>': "
                f"{line.strip()!r:.120}"
            )
        words = (match.group("text") or "").strip() or None
        out.append((match.group("key").strip(), words))
    return out


def _resolve(key: str, items: Sequence[Mapping[str, Any]]) -> str | None:
    """An image id from a number (as shown in the review), an id or an id prefix of 6+ characters."""
    if key.isdigit() and 1 <= int(key) <= len(items) and len(key) <= 4:
        return str(items[int(key) - 1]["id"])
    lowered = key.lower()
    exact = [i["id"] for i in items if str(i["id"]).lower() == lowered]
    if exact:
        return str(exact[0])
    if len(lowered) >= 6:
        found = {str(i["id"]) for i in items if str(i["id"]).lower().startswith(lowered)}
        if len(found) == 1:
            return found.pop()
    return None


def decide(
    chosen: Sequence[str],
    params_input: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    *,
    timed_out: bool = False,
) -> dict[str, Any]:
    """The decisions of an answer: ``{"approved", "rejected", "edits"}`` (raises on a bad answer)."""
    ids = [str(i["id"]) for i in items]
    if len(chosen) != 1 or chosen[0] not in OPTIONS:
        raise BloomReviewAnswerError(f"Expected one of {OPTIONS}; got {list(chosen)}")
    option = chosen[0]
    rejects = parse_lines(params_input.get("reject"), "reject")
    edits = parse_lines(params_input.get("edit"), "edit")
    unknown = [key for key, _ in rejects + edits if _resolve(key, items) is None]
    if unknown:
        raise BloomReviewAnswerError(
            f"The review names image(s) that are not in it: {unknown}. Use the numbers (#) or ids shown "
            f"in the review ({len(ids)} image(s): 1-{len(ids)}). Nothing was decided; a retry asks again."
        )
    if option == APPROVE_ALL:
        if rejects or edits:
            raise BloomReviewAnswerError(
                f"'{APPROVE_ALL}' was chosen but the form lists images to reject or edit; choose "
                f"'{SUBMIT}' to apply the form. Nothing was decided; a retry asks again."
            )
        return {"approved": ids, "rejected": [], "edits": []}
    if option == REJECT_ALL:
        reasons = {_resolve(key, items): text for key, text in rejects}
        default = TIMEOUT_REASON if timed_out else None
        return {
            "approved": [],
            "rejected": [{"id": i, "reason": reasons.get(i) or default} for i in ids],
            "edits": [],
        }
    rejected: dict[str, str | None] = {}
    for key, text in rejects:
        rejected[str(_resolve(key, items))] = text
    edited: dict[str, str] = {}
    missing = []
    for key, text in edits:
        if not text:
            missing.append(key)
            continue
        image_id = str(_resolve(key, items))
        edited[image_id] = f"{edited[image_id]}; {text}" if image_id in edited else text
    if missing:
        raise BloomReviewAnswerError(
            f"Edit line(s) without an instruction for {missing}: write '<#>: <what to change>'. "
            "Nothing was decided; a retry asks again."
        )
    both = sorted(set(rejected) & set(edited))
    if both:
        raise BloomReviewAnswerError(
            f"Image(s) {both} are both rejected and sent to edit; pick one. "
            "Nothing was decided; a retry asks again."
        )
    return {
        "approved": [i for i in ids if i not in rejected and i not in edited],
        "rejected": [{"id": i, "reason": r} for i, r in rejected.items()],
        "edits": [{"id": i, "instruction": t} for i, t in edited.items()],
    }


def review_result(
    decisions: Mapping[str, Any],
    *,
    user: Mapping[str, Any] | None,
    responded_at: Any,
    timed_out: bool,
    auto: bool,
    round_: int,
    page: int,
    pages: int,
) -> dict[str, Any]:
    """A review task's result: its decisions, who answered and when, and which round and page."""
    return {
        "approved": list(decisions["approved"]),
        "rejected": list(decisions["rejected"]),
        "edits": list(decisions["edits"]),
        "responded_by": user.get("name") if user else None,
        "responded_by_id": user.get("id") if user else None,
        "responded_at": responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at,
        "timed_out": timed_out,
        "auto_approved": auto,
        "round": round_,
        "page": page,
        "pages": pages,
    }


def review_field(
    decision: str, result: Mapping[str, Any], reason: str | None = None, instruction: str | None = None
) -> dict[str, Any]:
    """The ``review`` field of a manifest record."""
    return {
        "decision": decision,
        "reason": reason,
        "instruction": instruction,
        "by": result.get("responded_by"),
        "at": result.get("responded_at"),
        "round": result.get("round"),
        "timed_out": bool(result.get("timed_out")),
    }


def apply_reviews(
    records: Sequence[Mapping[str, Any]], reviews: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The manifest ``records`` with each reviewed record's ``review`` set from review results.

    A record's decision covers its images: ``edit_requested`` when any was sent to edit (the
    instructions joined), else ``rejected`` when any was rejected, else ``approved``. A record already
    reviewed keeps its earlier ``review`` in ``review_history``."""
    per_image: dict[str, tuple[str, str | None, Mapping[str, Any]]] = {}
    for result in reviews:
        for image_id in result.get("approved") or []:
            per_image[str(image_id)] = ("approved", None, result)
        for entry in result.get("rejected") or []:
            per_image[str(entry["id"])] = ("rejected", entry.get("reason"), result)
        for entry in result.get("edits") or []:
            per_image[str(entry["id"])] = ("edit_requested", entry.get("instruction"), result)
    out = []
    for record in records:
        new = dict(record)
        decided = [per_image[i] for i in completed_images(record) if i in per_image]
        if decided and not record.get("review"):
            edits = [d for d in decided if d[0] == "edit_requested"]
            rejects = [d for d in decided if d[0] == "rejected"]
            chosen = edits or rejects or decided
            words = "; ".join(d[1] for d in chosen if d[1]) or None
            decision, result = chosen[0][0], chosen[0][2]
            new["review"] = review_field(
                decision,
                result,
                reason=words if decision == "rejected" else None,
                instruction=words if decision == "edit_requested" else None,
            )
        out.append(new)
    return out


def decision_counts(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many records of a reviewed manifest have each decision."""
    decisions: dict[str, int] = {d: 0 for d in DECISIONS}
    for record in records:
        if isinstance(record.get("review"), Mapping):
            decisions[record["review"]["decision"]] = decisions.get(record["review"]["decision"], 0) + 1
    return decisions


__all__ = [
    "APPROVE_ALL",
    "DECISIONS",
    "OPTIONS",
    "REJECT_ALL",
    "SUBMIT",
    "TIMEOUT_REASON",
    "apply_reviews",
    "decide",
    "decision_counts",
    "review_field",
    "review_result",
]
