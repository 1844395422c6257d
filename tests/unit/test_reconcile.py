"""The pure decisions of :mod:`airflow_provider_bloom.logic.reconcile`: time window and matching rules."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from airflow_provider_bloom.exceptions import BloomTransportError
from airflow_provider_bloom.logic.reconcile import (
    Attempt,
    ImageQuery,
    ServerTime,
    bloom_window,
    brand_candidates,
    decide_brands,
    decide_images,
    image_candidates,
    is_open_ended,
)

BRAND = str(uuid.uuid4())
T0 = 1_800_000_000.0  # Bloom's clock when the request went out


def stamp(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def image(created: float, group: str | None = None, **fields) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "brandSessionId": BRAND,
        "actionType": "generation",
        "prompt": "a fox",
        "aspectRatio": "1:1",
        "variantGroupId": group,
        "createdAt": stamp(created),
        **fields,
    }


QUERY = ImageQuery("images.generate", "generation", BRAND, count=2, prompt="a fox", aspect_ratio="1:1")
WINDOW = (T0 - 1, T0 + 3)


def test_window_uses_only_monotonic_differences_and_the_date_header():
    # POST sent at mono 100, lost at 102; list sent at 105.0, answered at 105.2 with Date = T0 + 5.
    attempt = Attempt(sent=100.0, failed=102.0)
    server = ServerTime(date=T0 + 5, sent=105.0, received=105.2)
    lower, upper = bloom_window(attempt, server, tolerance=0.0)
    assert lower == pytest.approx(T0 - 0.2)  # Date may have been stamped as late as the answer came
    assert upper == pytest.approx(T0 + 3)  # Date is whole seconds: up to 1 s later than it says
    assert bloom_window(Attempt(100.0, 102.0, open_ended=True), server, 0.0)[1] is None


def test_one_group_of_the_requested_size_is_a_match_oldest_first():
    group = str(uuid.uuid4())
    second, first = image(T0 + 0.002, group), image(T0 + 0.001, group)
    decision = decide_images(image_candidates([second, first], QUERY, WINDOW), QUERY)
    assert decision.outcome == "match" and decision.ids == [first["id"], second["id"]]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"prompt": "a wolf"}, "another prompt"),
        ({"aspectRatio": "16:9"}, "another ratio"),
        ({"actionType": "edit"}, "another action"),
        ({"brandSessionId": str(uuid.uuid4())}, "another brand"),
    ],
)
def test_records_of_other_requests_are_not_candidates(change, why):
    group = str(uuid.uuid4())
    records = [image(T0, group, **change), image(T0, group, **change)]
    assert image_candidates(records, QUERY, WINDOW) == [], why


def test_records_outside_the_window_and_excluded_ids_are_not_candidates():
    early, late, mine = image(T0 - 1.01), image(T0 + 3.01), image(T0)
    query = ImageQuery("images.edit", "generation", BRAND, prompt="a fox", exclude=frozenset({mine["id"]}))
    assert image_candidates([early, late, mine], query, WINDOW) == []
    assert image_candidates([image(T0 - 1), image(T0 + 3)], query, WINDOW) != []  # edges are inside


def test_two_groups_are_ambiguous_and_a_partial_group_waits():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    both = [image(T0, a), image(T0, a), image(T0 + 0.5, b), image(T0 + 0.5, b)]
    decision = decide_images(image_candidates(both, QUERY, WINDOW), QUERY)
    assert decision.outcome == "ambiguous" and len(decision.records) == 4
    assert decide_images([image(T0, a)], QUERY).outcome == "partial"
    assert decide_images([image(T0, a)] * 3, QUERY).outcome == "ambiguous"  # bigger than asked
    assert decide_images([], QUERY).outcome == "none"


def test_single_images_without_a_group_count_one_each():
    query = ImageQuery("images.generate", "generation", BRAND, count=1, prompt="a fox")
    assert decide_images([image(T0)], query).outcome == "match"
    assert decide_images([image(T0), image(T0 + 1)], query).outcome == "ambiguous"


def test_untraceable_results_are_never_a_match():
    query = ImageQuery("images.resize", "resize", BRAND, untraceable="no link to the source")
    decision = decide_images([image(T0, actionType="resize")], query)
    assert decision.outcome == "ambiguous" and decision.reason == "no link to the source"


def test_brands_match_by_url_and_window():
    url = "https://acme.example"
    mine = {"id": "b1", "url": url, "workspaceId": None, "createdAt": stamp(T0)}
    old = {"id": "b0", "url": url, "workspaceId": None, "createdAt": stamp(T0 - 60)}
    other = {"id": "b2", "url": "https://other.example", "workspaceId": None, "createdAt": stamp(T0)}
    found = brand_candidates([mine, old, other], url, None, WINDOW)
    assert decide_brands(found).outcome == "match" and found == [mine]
    assert decide_brands(found + [dict(mine, id="b3")]).outcome == "ambiguous"


def test_a_read_timeout_leaves_the_window_open():
    import httpx

    timeout = BloomTransportError("lost", maybe_charged=True)
    timeout.__cause__ = httpx.ReadTimeout("read timed out")
    cut = BloomTransportError("lost", maybe_charged=True)
    cut.__cause__ = httpx.ReadError("reset")
    assert is_open_ended(timeout) and not is_open_ended(cut)


def test_a_lookup_reads_at_most_max_pages_and_then_says_the_listing_is_incomplete():
    """The page cap of a lookup: past ``MAX_PAGES`` pages the next page is not asked for at all."""
    from airflow_provider_bloom.logic.reconcile import MAX_PAGES, IncompleteListing, limited_pages

    asked: list[str | None] = []

    def list_images(cursor: str | None = None) -> dict:
        asked.append(cursor)
        return {"images": [], "hasMore": True, "nextCursor": f"c{len(asked)}"}

    page = limited_pages(list_images)
    for _ in range(MAX_PAGES):
        page(cursor=None)
    with pytest.raises(IncompleteListing, match="records were created since the request"):
        page(cursor="more")
    assert len(asked) == MAX_PAGES
