"""The batch's I/O-free parts: rows, the journal (group commits, replay, checkpoints), the manifest
records and the progress line."""

from __future__ import annotations

import json
import threading

import pytest

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.logic.batch.journal import (
    CHECKPOINT_EVERY,
    RETRY_STRIDE,
    Journal,
    read_events,
    replay,
    status_events,
)
from airflow_provider_bloom.logic.batch.manifest import derived_base, step_record, summary
from airflow_provider_bloom.logic.batch.progress import Progress, duration
from airflow_provider_bloom.logic.batch.rows import (
    BatchInputError,
    check_rows,
    normalize,
    request_of,
    rows_from_text,
)
from airflow_provider_bloom.logic.prices import credits_for


class MemoryStore:
    """A :class:`~airflow_provider_bloom.logic.batch.journal.SegmentStore` in memory."""

    def __init__(self) -> None:
        self.values: dict[str, list[dict]] = {}

    def get(self, name: str) -> list[dict] | None:
        return self.values.get(name)

    def put(self, name: str, events: list[dict]) -> None:
        self.values[name] = list(events)


# --------------------------------------------------------------------------- rows


def test_csv_jsonl_and_json_rows_are_read_by_their_suffix():
    csv = 'prompt,channel,variant_count\n"a, b",story,2\nc,feed,\n'
    assert rows_from_text(csv, "x.csv") == [
        {"prompt": "a, b", "channel": "story", "variant_count": "2"},
        {"prompt": "c", "channel": "feed", "variant_count": ""},
    ]
    assert rows_from_text('{"prompt": "a"}\n\n{"prompt": "b"}\n', "x.jsonl") == [
        {"prompt": "a"},
        {"prompt": "b"},
    ]
    assert rows_from_text('[{"prompt": "a"}]', "s3://b/x.json") == [{"prompt": "a"}]
    with pytest.raises(BloomInputError, match="line 2 is not JSON"):
        rows_from_text('{"prompt": "a"}\n{oops\n', "x.jsonl")
    with pytest.raises(BloomInputError, match="unknown format"):
        rows_from_text("prompt\na\n", "x.txt")


def test_cells_are_read_as_people_write_them():
    assert normalize("variant_count", " 3 ") == 3
    assert normalize("prompt", "  ") is None
    ids = "00000000-0000-4000-8000-000000000001; 00000000-0000-4000-8000-000000000002"
    assert normalize("reference_image_ids", ids) == ids.split("; ")
    assert normalize("reference_image_ids", '["x"]') == ["x"]
    row = {"prompt": "p", "model": "", "sku": "S1"}
    assert request_of(row, ("prompt", "model", "image_size"), {"model": "fast", "image_size": "4K"}) == {
        "prompt": "p",
        "model": "fast",
        "image_size": "4K",
    }


def test_every_bad_row_is_reported_at_once_by_number_and_field():
    def check(index: int, row: dict) -> str:
        if not row.get("prompt"):
            raise BloomInputError("prompt", "is required")
        if row.get("ratio") == "bad":
            raise BloomInputError("aspect_ratio", "must be one of 1:1, ...")
        return row["prompt"]

    assert check_rows([{"prompt": "a"}], check) == ["a"]
    with pytest.raises(BatchInputError) as raised:
        check_rows([{"prompt": "a"}, {}, {"prompt": "b", "ratio": "bad"}, {}], check)
    assert raised.value.problems == [
        (2, "prompt", "is required"),
        (3, "aspect_ratio", "must be one of 1:1, ..."),
        (4, "prompt", "is required"),
    ]
    assert "3 of 4 row(s) cannot be sent" in str(raised.value) and "Nothing was sent" in str(raised.value)
    with pytest.raises(BloomInputError, match="holds no rows"):
        check_rows([], check)


def test_prices_follow_blooms_published_list_and_say_what_is_assumed():
    assert credits_for("images.generate", {"imageSize": "4K", "variantCount": 3}) == 6
    assert credits_for("images.generate", {}) == 1
    assert credits_for("images.edit", {"imageSize": "4K"}) == 2
    assert credits_for("images.resize", {}, source_size="2K") == 1
    assert credits_for("images.resize", {}) == 2  # unknown source size: the safe side
    assert credits_for("images.removeBackground", {}) == credits_for("images.vectorize", {}) == 1


# --------------------------------------------------------------------------- the journal


def test_group_commits_keep_each_writers_order_and_write_fewer_values_than_events():
    store = SlowStore()
    journal = Journal(store)

    def writer(name: int) -> None:
        for i in range(150):
            journal.append({"e": "send", "r": name * 1000 + i, "t": 0})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = read_events(store)
    assert len(found.events) == 8 * 150
    for name in range(8):  # each writer's events come back in the order it wrote them
        mine = [e["r"] for e in found.events if e["r"] // 1000 == name]
        assert mine == sorted(mine) and len(mine) == 150
    assert journal.writes == found.next_seq < len(found.events)  # writers that arrive together share a write
    assert found.next_checkpoint >= 1 and store.reads_of_segments() < found.next_seq


class SlowStore(MemoryStore):
    """A store whose writes take a little while (so that writers queue up behind each other)."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []

    def put(self, name: str, events: list) -> None:
        threading.Event().wait(0.0005)
        super().put(name, events)

    def get(self, name: str) -> list | None:
        self.gets.append(name)
        return super().get(name)

    def reads_of_segments(self) -> int:
        self.gets.clear()
        read_events(self)
        return sum(name.startswith("s") for name in self.gets)


def test_a_resumed_journal_continues_after_the_last_segment_and_its_checkpoints():
    store = MemoryStore()
    first = Journal(store)
    for i in range(CHECKPOINT_EVERY + 5):
        first.append({"e": "send", "r": i, "t": 0})
    found = read_events(store)
    assert found.next_seq == CHECKPOINT_EVERY + 5 and len(found.events) == found.next_seq
    assert found.next_checkpoint == 1 and len(found.tail) == 5  # checkpoint 0 holds the first 64
    second = Journal(store, found)
    for i in range(CHECKPOINT_EVERY):
        second.append({"e": "back", "r": i})
    found = read_events(store)
    assert len(found.events) == 2 * CHECKPOINT_EVERY + 5
    assert found.next_checkpoint == 2
    assert store.get("c00001")[0] == {"e": "upto", "seq": 2 * CHECKPOINT_EVERY}  # the first try's tail too
    assert [e["e"] for e in found.events[-CHECKPOINT_EVERY:]] == ["back"] * CHECKPOINT_EVERY


def test_checkpoints_stay_under_airflows_value_limit():
    """Airflow's task_state_store takes values up to 64 KB: a checkpoint is cut before it gets there."""
    store = MemoryStore()
    journal = Journal(store)
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(5000)]
    for start in range(0, len(ids), 200):  # statuses of 5,000 images, 200 ids an event
        journal.append(*status_events([{"id": i, "status": "completed"} for i in ids[start : start + 200]]))
    sizes = [len(json.dumps(v)) for name, v in store.values.items() if name.startswith("c")]
    assert sizes and max(sizes) < 64 * 1024
    assert len(replay(read_events(store).events).statuses) == 5000


def test_a_failed_write_fails_the_writer_and_every_later_append():
    class Broken(MemoryStore):
        def put(self, name: str, events: list) -> None:
            raise OSError("disk full")

    journal = Journal(Broken())
    with pytest.raises(OSError, match="disk full"):
        journal.append({"e": "send", "r": 0, "t": 0})
    with pytest.raises(RuntimeError, match="failed earlier"):
        journal.append({"e": "send", "r": 1, "t": 0})


def test_replay_tells_done_rows_from_rows_in_doubt_and_unsent_ones():
    events = [
        {"e": "send", "r": 0, "t": 10.0},
        {"e": "ok", "r": 0, "ids": ["a", "b"], "g": "g0"},
        {"e": "send", "r": 1, "t": 11.0},  # the try died here: in doubt
        {"e": "send", "r": 2, "t": 12.0},
        {"e": "back", "r": 2},  # a 429: not sent
        {"e": "send", "r": 3, "t": 13.0},
        {"e": "rej", "r": 3, "code": "VALIDATION_ERROR", "msg": "no"},
        {"e": "send", "r": 4, "t": 14.0},
        {"e": "lost", "r": 4, "msg": "uncertain"},
        *status_events([{"id": "a", "status": "completed"}, {"id": "b", "status": "generating"}]),
        {"e": "wait", "t": 20.0, "try": 1},
        {"e": "wait", "t": 30.0, "try": 1},
    ]
    state = replay(events)
    assert [state.row(i).done for i in range(5)] == [True, False, False, True, True]
    assert [state.row(i).in_doubt for i in range(5)] == [False, True, False, False, False]
    assert state.row(1).sent_at == 11.0 and state.row(0).attempts == 1 and state.row(2).attempts == 0
    assert state.pending_ids() == ["b"] and list(state.accepted_ids()) == ["a", "b"]
    assert state.wait_started == {1: 20.0}  # the first wait of a try sets its deadline


def test_an_attempt_counts_against_the_budget_once_decided_and_knows_why_the_one_before_failed():
    state = replay(
        [
            {"e": "send", "r": 0, "t": 1.0},
            {"e": "ok", "r": 0, "ids": ["a"]},
            *status_events([{"id": "a", "status": "failed", "failureReason": "content_safety"}]),
            {"e": "send", "r": 1, "t": 2.0},
            {"e": "rej", "r": 1, "code": "VALIDATION_ERROR", "msg": "no"},
            {"e": "send", "r": 2, "t": 3.0},
            {"e": "lost", "r": 2, "msg": "uncertain"},
        ]
    )
    assert [state.committed(i) for i in range(4)] == [True, False, True, False]
    second = RETRY_STRIDE  # row 0's second attempt, decided on but not sent yet
    assert state.committed(second) and state.last_reasons(second) == {"content_safety"}


# --------------------------------------------------------------------------- manifest records


def test_records_say_what_happened_to_each_row():
    state = replay(
        [
            {"e": "send", "r": 0, "t": 1},
            {"e": "ok", "r": 0, "ids": ["a", "b"], "g": "g"},
            *status_events(
                [
                    {"id": "a", "status": "completed"},
                    {"id": "b", "status": "failed", "failureReason": "content_safety"},
                ]
            ),
            {"e": "send", "r": 1, "t": 1},
            {"e": "rej", "r": 1, "code": "BRAND_NOT_FOUND", "msg": "gone"},
            {"e": "send", "r": 2, "t": 1},
            {"e": "lost", "r": 2, "msg": "could not tell"},
        ]
    )
    base = {"row": 1, "prompt": "p", "sku": "S1", "status": "old", "credits": 99}
    partial = step_record(
        base, state.row(0), state.statuses, operation="images.generate", credits=2, waited=True
    )
    assert partial["status"] == "partial" and partial["sku"] == "S1" and partial["credits"] == 2
    assert partial["failure_reason"] == "content_safety" and partial["variant_group_id"] == "g"
    refused = step_record(
        base, state.row(1), state.statuses, operation="images.generate", credits=1, waited=True
    )
    assert (refused["status"], refused["credits"], refused["failure_reason"]) == (
        "rejected",
        0,
        "BRAND_NOT_FOUND",
    )
    lost = step_record(
        base, state.row(2), state.statuses, operation="images.generate", credits=1, waited=True
    )
    assert (lost["status"], lost["credits"]) == ("uncertain", None)
    derived = derived_base(partial, "a")
    # The step is kept with its request (none given here) and its cost for this image (2 credits, 2 ids).
    assert derived["lineage"] == [{"operation": "images.generate", "image_id": "a", "credits": 1}]
    assert derived["source_image_id"] == "a" and "image_ids" not in derived and derived["sku"] == "S1"
    result = summary("file:///m.jsonl", [partial, refused, lost], "images.generate")
    assert result["counts"] == {"partial": 1, "rejected": 1, "uncertain": 1} and result["credits"] == 2


# --------------------------------------------------------------------------- progress


def test_the_progress_line_gives_the_rate_against_the_budget_and_time_left():
    now = [100.0]
    progress = Progress(total=1000, given_per_minute=120, already=100, clock=lambda: now[0])
    now[0] += 60
    progress.submitted, progress.rejected, progress.rate_limited = 110, 2, 1
    progress.completed, progress.failed = 80, 3
    assert progress.due()
    line = progress.line()
    assert "Submitted 212/1,000 rows (21%)" in line and "2 refused" in line and "1 answered 429" in line
    assert "images so far: 80 completed, 3 failed" in line
    assert "112/min of 120/min given (93%)" in line and "about 7m02s left" in line
    assert not progress.due()
    assert duration(3725) == "1h02m" and duration(42) == "42s"


def test_the_rate_is_measured_over_the_last_minute_not_the_opening_burst():
    now = [0.0]
    progress = Progress(total=10_000, given_per_minute=6000, clock=lambda: now[0])
    progress.submitted = 300  # the burst, at once
    for _ in range(12):  # then 5,700 a minute, read every 10 s
        now[0] += 10
        progress.submitted += 950
        rate = progress.per_minute()
    assert rate == pytest.approx(5700)
