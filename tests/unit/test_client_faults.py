"""What each emulator fault kind means for the client, as the table in docs/emulator.md says, counted on
the emulator: ``paid_posts`` (reached it) vs ``paid_posts_effective`` (took effect), the ``cut`` status."""

from __future__ import annotations

import re
import time

import pytest

from airflow_provider_bloom.client.transport import BloomClient
from airflow_provider_bloom.emulator.faults import FAULT_KINDS
from airflow_provider_bloom.exceptions import BloomServerError, BloomTransportError
from tests.helpers import REPO, fast_settings

EMULATOR_PAGE = (REPO / "docs" / "emulator.md").read_text()
GENERATE = "images.generate"

# kind, fault arguments, expected error (None: success), paid_posts, paid_posts_effective, statuses seen
CASES = [
    ("status 429", {"kind": "status", "status": 429}, None, 2, 1, {"429": 1, "202": 1}),
    ("status 500", {"kind": "status", "status": 500}, BloomServerError, 1, 0, {"500": 1}),
    ("delay", {"kind": "delay", "delay_seconds": 0.2}, None, 1, 1, {"202": 1}),
    # the client gives up first; the emulator still handles the request (charged), as Bloom would
    ("delay past the read timeout", {"kind": "delay", "delay_seconds": 2.5}, BloomTransportError, 1, 1, None),
    ("cut_before", {"kind": "cut_before"}, BloomTransportError, 1, 0, {"cut": 1}),
    ("cut_after", {"kind": "cut_after"}, BloomTransportError, 1, 1, {"cut": 1}),
    ("truncate", {"kind": "truncate"}, BloomTransportError, 1, 1, {"202": 1}),
    ("corrupt", {"kind": "corrupt"}, BloomServerError, 1, 1, {"202": 1}),
]


@pytest.mark.parametrize(
    ("name", "fault", "error", "posts", "effective", "statuses"), CASES, ids=[c[0] for c in CASES]
)
def test_each_fault_kind_on_a_paid_post(
    bloom_emulator, bloom_api_key, name, fault, error, posts, effective, statuses
):
    bloom_emulator.add_fault(GENERATE, fault.pop("kind"), **fault)
    client = BloomClient(fast_settings(bloom_emulator.base_url, bloom_api_key, timeout=1.5, backoff_max=0.02))
    if error is None:
        assert client.generate_images("a kite")["ids"]
    else:
        with pytest.raises(error) as info:
            client.generate_images("a kite")
        # every answer that is not a clean success may have been charged: sent once, not retried
        assert info.value.maybe_charged and "may have accepted it and charged for it" in str(info.value)
    if fault.get("delay_seconds", 0) > 1.5:
        time.sleep(fault["delay_seconds"] - 1.0)  # past the delay: the request would have been handled now
    seen = bloom_emulator.requests()
    assert seen["paid_posts"] == posts
    assert seen["paid_posts_effective"] == effective
    if statuses is not None:  # (an answer to a client that hung up is not counted the same way everywhere)
        assert seen["by_operation_status"].get(GENERATE, {}) == statuses
    bloom_emulator.clear_violations()  # corrupt breaks the spec on purpose


def test_the_docs_document_every_fault_kind_and_the_counters():
    for kind in FAULT_KINDS:
        assert re.search(rf"^\| `{kind}`", EMULATOR_PAGE, re.MULTILINE), (
            f"fault kind {kind!r} is not in the fault table of docs/emulator.md"
        )
    for word in ("paid_posts_effective", "`paid_posts`", '`"cut"`', "by_operation_status"):
        assert word in EMULATOR_PAGE
    assert "cannot tell apart from `cut_after`" in EMULATOR_PAGE  # cut_before is not the safe-retry case
