"""The review's decisions, without I/O or Airflow: its pages, the body a reviewer reads (thumbnails,
escaping, the table), what an answer means, and the ``review`` field each manifest record gets."""

from __future__ import annotations

import pytest

from airflow_provider_bloom.exceptions import BloomInputError, BloomReviewAnswerError
from airflow_provider_bloom.logic.review.answers import (
    APPROVE_ALL,
    REJECT_ALL,
    SUBMIT,
    apply_reviews,
    decide,
    decision_counts,
)
from airflow_provider_bloom.logic.review.body import _metadata, render_body, thumbnail_url
from airflow_provider_bloom.logic.review.paging import given_items, page_number, page_of
from tests.helpers import API_KEY

IDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(1, 6)]
ITEMS = [{"id": i} for i in IDS]


# ------------------------------------------------------------------------------- body
def test_thumbnail_is_blooms_short_link_made_absolute_and_never_holds_the_key():
    base = "https://www.trybloom.ai/api/v1"
    assert thumbnail_url({"imageUrl": "/img/abc"}, base) == "https://www.trybloom.ai/img/abc"
    assert thumbnail_url({"imageUrl": "https://x.test/img/abc"}, base) == "https://x.test/img/abc"
    assert thumbnail_url({"imageUrl": f"https://x.test/img/abc?k={API_KEY}"}, base, [API_KEY]) is None
    assert thumbnail_url({"imageUrl": "data:image/png;base64,AAAA"}, base) is None
    assert thumbnail_url({"imageUrl": "javascript:alert(1)"}, base) is None
    assert thumbnail_url({"imageUrl": None}, base) is None
    # A hostile server's URL cannot end the Markdown image or the table cell, nor add raw HTML.
    hostile = 'https://x.test/img/a) | <b>x</b> ![y](https://evil.test/z\n"`'
    url = thumbnail_url({"imageUrl": hostile}, base)
    assert url is not None and url.startswith("https://x.test/img/a")
    assert not set(url) & set(' )(|<>[]\n"`')
    assert thumbnail_url({"imageUrl": "https://x.test/img/a%20b?s=1&t=2"}, base) == (
        "https://x.test/img/a%20b?s=1&t=2"
    )


def test_body_escapes_markup_and_html_in_user_text():
    from airflow_provider_bloom.logic.review.body import _md

    text = _md("a <b>bold</b> | pipe ![x](http://evil/) **stars**\nnext line")
    assert "<" not in text and ">" not in text.replace("&gt;", "")
    assert "\\|" in text and "\\!\\[x\\]" in text and "\n" not in text


def test_body_is_a_table_with_one_thumbnail_per_image():
    rows = [
        {
            "n": n,
            "id": IDS[n - 1],
            "thumbnail": f"http://127.0.0.1:1/img/{IDS[n - 1]}",
            "prompt": f"prompt {n}",
            "metadata": "row 1, channel: story",
            "size": "1024×1024",
            "status": "completed",
        }
        for n in (1, 2)
    ]
    body = render_body(rows, "Check the *spring* campaign.", page=1, pages=3, round_=2, total=60)
    assert body.startswith("Check the *spring* campaign.")
    assert "page 1 of 3, 60 in all, round 2" in body
    assert f"[![image 1](http://127.0.0.1:1/img/{IDS[0]})](http://127.0.0.1:1/img/{IDS[0]})" in body
    assert body.count("![image") == 2 and "| prompt 2 |" in body and "channel: story" in body
    assert "<" not in body.replace("<#>", "")  # HITL drops raw HTML (and the line after it)


# ------------------------------------------------------------------------------- answers
def test_metadata_shows_the_users_columns_not_what_the_provider_recorded():
    """A batch manifest's record: the row's own columns show; the step's request, attempts, files and
    lineage (the provider's bookkeeping) do not."""
    record = {
        "row": 4,
        "prompt": "p",
        "channel": "story",
        "sku": "S4",
        "request": {"prompt": "p", "model": "standard"},
        "attempt_history": [{"model": "pro", "reason": "content_safety"}],
        "lineage": [{"operation": "images.generate", "image_id": "x"}],
        "sizes": [123],
        "files": ["a.png"],
        "credits": 1,
        "model": "standard",
    }
    assert _metadata(record) == "row 4, channel: story, sku: S4"


def test_approve_all():
    assert decide([APPROVE_ALL], {"reject": "", "edit": None}, ITEMS) == {
        "approved": IDS,
        "rejected": [],
        "edits": [],
    }


def test_per_image_decisions_by_number_id_and_prefix():
    answer = decide(
        [SUBMIT],
        {"reject": "2: off-brand colours\n\n#3", "edit": f"{IDS[3][:0]}{IDS[3]}: warmer light, no text"},
        ITEMS,
    )
    assert answer["approved"] == [IDS[0], IDS[4]]
    assert answer["rejected"] == [
        {"id": IDS[1], "reason": "off-brand colours"},
        {"id": IDS[2], "reason": None},
    ]
    assert answer["edits"] == [{"id": IDS[3], "instruction": "warmer light, no text"}]
    prefix = decide([SUBMIT], {"reject": "", "edit": "00000000-0000-4000-8000-000000000005: crop"}, ITEMS)
    assert prefix["edits"] == [{"id": IDS[4], "instruction": "crop"}]


def test_reject_all_keeps_the_reasons_given():
    answer = decide([REJECT_ALL], {"reject": "1: blurry", "edit": ""}, ITEMS)
    assert answer["approved"] == [] and len(answer["rejected"]) == 5
    assert answer["rejected"][0] == {"id": IDS[0], "reason": "blurry"}


@pytest.mark.parametrize(
    ("chosen", "form", "message"),
    [
        ([SUBMIT], {"reject": "7: nope\nabcdef12: no", "edit": ""}, "not in it: ['7', 'abcdef12']"),
        ([SUBMIT], {"reject": "", "edit": "2"}, "without an instruction for ['2']"),
        ([SUBMIT], {"reject": "2: x", "edit": "2: y"}, "both rejected and sent to edit"),
        ([APPROVE_ALL], {"reject": "2: x", "edit": ""}, "choose 'Submit per-image decisions'"),
        (["Maybe"], {}, "Expected one of"),
    ],
)
def test_a_bad_answer_fails_with_a_message_naming_the_problem(chosen, form, message):
    with pytest.raises(BloomReviewAnswerError, match=message.replace("[", r"\[").replace("(", r"\(")):
        decide(chosen, form, ITEMS)


def test_the_manifest_gets_a_review_per_record_and_keeps_the_rest():
    records = [
        {"row": 1, "image_ids": [IDS[0]], "status": "completed"},
        {"row": 2, "image_ids": [IDS[1]], "status": "completed"},
        {"row": 3, "image_ids": [IDS[2]], "status": "completed"},
        {"row": 4, "image_ids": [], "status": "rejected"},
    ]
    result = {
        "approved": [IDS[0]],
        "rejected": [{"id": IDS[1], "reason": "too dark"}],
        "edits": [{"id": IDS[2], "instruction": "warmer"}],
        "responded_by": "ana",
        "responded_at": "2026-12-07T09:00:00+00:00",
        "timed_out": False,
        "round": 1,
    }
    out = apply_reviews(records, [result])
    assert out[0]["review"] == {
        "decision": "approved",
        "reason": None,
        "instruction": None,
        "by": "ana",
        "at": "2026-12-07T09:00:00+00:00",
        "round": 1,
        "timed_out": False,
    }
    assert out[1]["review"]["decision"] == "rejected" and out[1]["review"]["reason"] == "too dark"
    assert out[2]["review"]["decision"] == "edit_requested" and out[2]["review"]["instruction"] == "warmer"
    assert "review" not in out[3]
    assert decision_counts(out) == {"approved": 1, "rejected": 1, "edit_requested": 1}


# ------------------------------------------------------------------------------- paging
def test_a_page_is_its_share_of_the_items_and_no_page_means_one_page():
    items = [{"id": i} for i in IDS]
    assert page_of(items, 3, 2) == ([items[4]], 3, 3)
    assert page_of(items[:2], None, 2) == (items[:2], 1, 1)
    with pytest.raises(BloomInputError, match="more than page_size=2"):
        page_of(items, None, 2)
    with pytest.raises(BloomInputError, match="is 4, but there are 3 page"):
        page_of(items, 4, 2)
    assert page_number(" 2 ") == 2 and page_number("") is None and page_number(None) is None
    with pytest.raises(BloomInputError, match="must be a page number from 1; got 0"):
        page_number(0)


def test_images_given_as_ids_or_records_are_reviewed_once_each():
    record = {"id": IDS[1], "prompt": "p"}
    assert given_items([IDS[0], record, IDS[0]]) == [
        {"id": IDS[0], "given": None},
        {"id": IDS[1], "given": record},
    ]
