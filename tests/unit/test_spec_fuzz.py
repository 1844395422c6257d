"""Fuzzed arguments: either a BloomInputError naming the field before anything is sent, or Bloom accepts.

Seeded (``derandomize``) and bounded (``max_examples`` and a per-example deadline), so
the run is the same on every machine. "Bloom" is the emulator, which validates every
request against the spec as Bloom does.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.client.transport import BloomClient
from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID
from airflow_provider_bloom.exceptions import BloomAPIError, BloomInputError

FUZZ = settings(
    max_examples=200,
    deadline=2000,  # ms per example
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What breaks URLs, ids and JSON: RFC 3986 outsiders, escapes, controls, non-ASCII, lone surrogates.
NASTY = [
    " ",
    '"',
    "'",
    "|",
    "<",
    ">",
    "{",
    "}",
    "\\",
    "^",
    "`",
    "é",
    "日",
    "\n",
    "\t",
    "\x00",
    "%",
    "%zz",
    "%4",
    "%41",
    "[",
    "]",
    "#",
    "?",
    "@",
    ":",
    "\ud800",
    "\udcff",
    "..",
    "/",
    "&",
    "=",
    "+",
    ";",
]
pieces = st.one_of(
    st.sampled_from(NASTY), st.text(max_size=4), st.from_regex(r"[a-z0-9.-]{1,8}", fullmatch=True)
)
texts = st.lists(pieces, max_size=6).map("".join)

hosts = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "a.example",
            "[::1]",
            "[::1",
            "example.com:8080",
            "example.com:80x",
            "",
            "user:pw@example.com",
            "ex ample.com",
            "exämple.com",
        ]
    ),
    texts,
)
urls = st.one_of(
    st.builds(
        lambda s, h, p: f"{s}://{h}/{p}",
        st.sampled_from(["http", "https", "HTTPS", "ftp", "file"]),
        hosts,
        texts,
    ),
    texts,
)
uuids = st.one_of(
    st.just(DEFAULT_BRAND_ID),
    st.builds(lambda u, tail: str(u) + tail, st.uuids(), st.sampled_from(["", "\n", " ", "x", "\x00"])),
    texts,
)
numbers = st.one_of(
    st.integers(-5, 200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([True, "3", None]),
)
#: Codes for a well-formed request naming a brand, image, workspace or cursor that does not exist.
NOT_THERE = {
    "BRAND_NOT_FOUND",
    "NOT_FOUND",
    "IMAGE_NOT_FOUND",
    "REFERENCE_IMAGE_NOT_FOUND",
    "SESSION_NOT_FOUND",
    "WORKSPACE_NOT_FOUND",
    "INVALID_CURSOR",
}
prompts = st.one_of(texts, st.integers(1995, 2005).map(lambda n: "p" * n))


def client_for(emulator, key: str) -> BloomClient:
    return BloomClient(ClientSettings(base_url=emulator.base_url, api_key=key, max_retries=0, timeout=10))


def either_refused_or_accepted(emulator, key: str, method: str, kwargs: dict[str, Any]) -> None:
    before = emulator.requests()["total"]
    with client_for(emulator, key) as client:
        try:
            getattr(client, method)(**kwargs)
        except BloomInputError as exc:
            assert exc.field.split("[")[0] in kwargs or exc.field == "file", exc
            assert emulator.requests()["total"] == before, f"{exc} but something was sent"
            return
        except BloomAPIError as exc:
            # A well-formed request about something that does not exist is not an input-check miss.
            if exc.code not in NOT_THERE:
                raise AssertionError(f"the client sent {kwargs!r} and Bloom refused it: {exc}") from exc
    # Otherwise Bloom (the emulator, which validates every request against the spec) accepted it.


@pytest.fixture
def fuzz_emulator(bloom_emulator):
    bloom_emulator.configure(unlimited_credits=True)
    bloom_emulator.reset()
    return bloom_emulator


@FUZZ
@given(
    prompt=prompts,
    brand=uuids,
    aspect_ratio=st.one_of(st.none(), st.sampled_from(["1:1", "16:9", "7:3", ""])),
    variant_count=st.one_of(st.none(), numbers),
    refs=st.one_of(st.none(), st.lists(uuids, max_size=3)),
)
def test_generate_images(fuzz_emulator, bloom_api_key, prompt, brand, aspect_ratio, variant_count, refs):
    kwargs = dict(
        prompt=prompt, brand_session_id=brand, aspect_ratio=aspect_ratio, variant_count=variant_count
    )
    if refs is not None:
        # references must exist to be accepted; fuzz only their shape with the brand's own ids
        kwargs["reference_image_ids"] = [
            r for r in refs if not r.startswith(tuple("0123456789abcdef"))
        ] or None
    either_refused_or_accepted(fuzz_emulator, bloom_api_key, "generate_images", kwargs)


@FUZZ
@given(image_url=urls, brand=uuids)
def test_upload_image_by_url(fuzz_emulator, bloom_api_key, image_url, brand):
    if "download-fails" in image_url or "127.0.0.1" in image_url or "localhost" in image_url:
        return
    if isinstance(image_url, str) and "[::1]" in image_url:
        return  # a loopback literal: the emulator would try to fetch it
    either_refused_or_accepted(
        fuzz_emulator, bloom_api_key, "upload_image", dict(image_url=image_url, brand_session_id=brand)
    )


@FUZZ
@given(url=urls, logo_url=st.one_of(st.none(), urls))
def test_create_brand(fuzz_emulator, bloom_api_key, url, logo_url):
    either_refused_or_accepted(fuzz_emulator, bloom_api_key, "create_brand", dict(url=url, logo_url=logo_url))


@FUZZ
@given(
    query=prompts,
    brand=uuids,
    limit=st.one_of(st.none(), numbers),
    cursor=st.one_of(st.none(), texts),
    max_distance=st.one_of(st.none(), numbers),
)
def test_search_images(fuzz_emulator, bloom_api_key, query, brand, limit, cursor, max_distance):
    kwargs = dict(query=query, brand_session_id=brand, limit=limit, cursor=cursor, max_distance=max_distance)
    either_refused_or_accepted(fuzz_emulator, bloom_api_key, "search_images", kwargs)


@FUZZ
@given(
    ids=st.one_of(st.none(), st.lists(uuids, max_size=3)),
    status=st.one_of(st.none(), st.sampled_from(["completed", "done", ""]), texts),
    limit=st.one_of(st.none(), numbers),
    cursor=st.one_of(st.none(), texts),
    workspace_id=st.one_of(st.none(), texts),
)
def test_list_images(fuzz_emulator, bloom_api_key, ids, status, limit, cursor, workspace_id):
    kwargs = dict(ids=ids, status=status, limit=limit, cursor=cursor, workspace_id=workspace_id)
    either_refused_or_accepted(fuzz_emulator, bloom_api_key, "list_images", kwargs)


def test_the_fuzz_reaches_both_outcomes(fuzz_emulator, bloom_api_key):
    """A guard that the harness can tell the two apart: one refused, one accepted."""
    either_refused_or_accepted(
        fuzz_emulator,
        bloom_api_key,
        "upload_image",
        dict(image_url="https://a.example/x y", brand_session_id=DEFAULT_BRAND_ID),
    )
    assert fuzz_emulator.requests()["total"] == 0
    either_refused_or_accepted(
        fuzz_emulator,
        bloom_api_key,
        "upload_image",
        dict(image_url="https://a.example/x%20y", brand_session_id=DEFAULT_BRAND_ID),
    )
    assert fuzz_emulator.requests()["by_operation"]["images.upload"] == 1


@FUZZ
@given(
    image_id=uuids,
    wait=st.booleans(),
    timeout=st.one_of(st.none(), numbers),
)
def test_get_image(fuzz_emulator, bloom_api_key, image_id, wait, timeout):
    kwargs = dict(image_id=image_id, wait=wait, timeout=timeout if wait else None)
    if wait and isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 5:
        kwargs["timeout"] = 1  # keep a valid long-poll short: the question is the shape, not the wait
    either_refused_or_accepted(fuzz_emulator, bloom_api_key, "get_image", kwargs)


@FUZZ
@given(
    workspace_id=st.one_of(st.none(), texts),
    limit=st.one_of(st.none(), numbers),
    cursor=st.one_of(st.none(), texts),
)
def test_list_brands(fuzz_emulator, bloom_api_key, workspace_id, limit, cursor):
    kwargs = dict(workspace_id=workspace_id, limit=limit, cursor=cursor)
    either_refused_or_accepted(fuzz_emulator, bloom_api_key, "list_brands", kwargs)
