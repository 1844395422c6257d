"""RefusalPolicy: which attempt comes next for one input, from how its attempts ended (no I/O)."""

from __future__ import annotations

import pytest

from airflow_provider_bloom.operators._image_work import RefusalPolicy

REGENERATE = RefusalPolicy.checked("images.generate", "regenerate", ["fast", "standard"], 4, 0)


def attempt(model, *statuses):
    return {"model": model, "image_ids": ["x"] * len(statuses), "statuses": [list(s) for s in statuses]}


REFUSED = ("failed", "content_safety")
LIMITED = ("failed", "rate_limited")


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        ([attempt(None, REFUSED)], ("fast", "content_safety")),  # no model named: Bloom's pro
        ([attempt("fast", REFUSED)], ("standard", "content_safety")),  # fast already tried
        ([attempt(None, REFUSED), attempt("fast", REFUSED), attempt("standard", REFUSED)], None),
        ([attempt("pro", LIMITED)], ("pro", "rate_limited")),  # same model, after a pause
        ([attempt("pro", REFUSED, LIMITED)], ("fast", "content_safety")),
        ([attempt("pro", REFUSED, ("completed", None))], None),  # partial: final
        ([attempt("pro", ("failed", "other"))], None),  # another reason: final
        ([{"model": "pro", "image_ids": ["x"], "statuses": None}], None),  # still running
        ([attempt("pro", LIMITED)] * 4, None),  # max_attempts reached
    ],
)
def test_next_attempt(attempts, expected):
    assert REGENERATE.next_attempt(attempts) == expected


def test_report_never_makes_another():
    assert RefusalPolicy().next_attempt([attempt(None, REFUSED)]) is None
