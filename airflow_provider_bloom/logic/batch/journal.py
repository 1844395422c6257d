"""The journal of a batch: what was sent and what Bloom accepted, durable before the task moves on.

Bloom has no idempotency key, so a batch that is killed and retried must know, for every row, whether
its paid POST may have gone out. The journal records, in order:

* ``send``: the row's POST is about to go out (written *before* it is sent, with the wall time);
* ``back``: it did not go out after all (Bloom answered 429, or the connection was refused);
* ``ok``: Bloom accepted it (the new ids), or the ids were recovered after a lost answer;
* ``rej``: Bloom refused it with an error code (nothing was charged);
* ``lost``: its answer was lost and what it created could not be found for certain (never resent);
* ``st``: images that reached a terminal status (so a resumed batch does not ask again);
* ``wait``: when the wait for the batch began (its deadline survives deferrals and retries).

On a retry, :func:`replay` folds the journal into a :class:`BatchState`: rows with ``ok``/``rej``/
``lost`` are done, rows with ``send`` but no outcome are *in doubt* (reconciled against Bloom's list,
never blindly resent), and the rest were never sent.

Storage is anything with ``get(seq) -> list | None`` and ``put(seq, events)`` (:class:`SegmentStore`):
Airflow's ``task_state_store`` (one key per segment) or a folder of files in any object storage. Writes
are *group commits* (:class:`Journal`): the events of every thread that arrives while a segment is being
written go out together in the next one, so a journal keeps up with a hundred POSTs a second on a
store that takes ten milliseconds a write. Every :data:`CHECKPOINT_EVERY` segments a checkpoint holds
them all again (or sooner, before a checkpoint passes :data:`CHECKPOINT_BYTES`: Airflow's
``[state_store] max_value_storage_bytes`` is 64 KB), so that a replay reads the checkpoints plus the tail.
A checkpoint's first event says up to which segment it holds them (``{"e": "upto", "seq": N}``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Segments per checkpoint at most (a checkpoint is read instead of the segments it holds).
CHECKPOINT_EVERY = 64
#: A checkpoint is written before its events pass this many bytes of JSON (Airflow's store takes 64 KB).
CHECKPOINT_BYTES = 48 * 1024
#: Ids per ``st`` event (keeps each value small).
STATUS_CHUNK = 200
#: The journal's row index of attempt n (2, 3...) of row i is ``i + (n - 1) * RETRY_STRIDE``.
RETRY_STRIDE = 1_000_000_000


class SegmentStore(Protocol):
    """Where a journal's segments and checkpoints live."""

    def get(self, name: str) -> list[dict[str, Any]] | None:
        """The events stored under ``name``, or None if there is no such value."""

    def put(self, name: str, events: list[dict[str, Any]]) -> None:
        """Store ``events`` under ``name`` durably (a SIGKILL after this returns must not lose them)."""


def segment_name(seq: int) -> str:
    return f"s{seq:07d}"


def checkpoint_name(number: int) -> str:
    return f"c{number:05d}"


@dataclass
class Replayed:
    """What :func:`read_events` found: the events in order, where the next segment and checkpoint go,
    and the segments written since the last checkpoint (the next checkpoint must hold them too)."""

    events: list[dict[str, Any]]
    next_seq: int = 0
    next_checkpoint: int = 0
    tail: list[list[dict[str, Any]]] = field(default_factory=list)


def read_events(store: SegmentStore) -> Replayed:
    """Every event in ``store``, in order: the checkpoints, then the segments after the last one."""
    found = Replayed([])
    while (checkpoint := store.get(checkpoint_name(found.next_checkpoint))) is not None:
        marker, *held = checkpoint
        found.events.extend(held)
        found.next_seq = int(marker["seq"])
        found.next_checkpoint += 1
    while (segment := store.get(segment_name(found.next_seq))) is not None:
        found.events.extend(segment)
        found.tail.append(segment)
        found.next_seq += 1
    return found


class Journal:
    """Append events to a :class:`SegmentStore` with group commits; thread-safe.

    :meth:`append` returns once its events are stored. One caller at a time writes (the leader): it
    takes every event queued so far, writes them as the next segment, and wakes the callers whose
    events that segment held. A failed write fails every caller waiting on it, and the journal after it.
    """

    def __init__(self, store: SegmentStore, resume: Replayed | None = None) -> None:
        self.store = store
        self.next_seq = resume.next_seq if resume else 0
        self.writes = 0
        self._cond = threading.Condition()
        self._queued: list[dict[str, Any]] = []
        self._opened = 0  # batches handed to a leader
        self._done = 0  # batches written
        self._writing = False
        self._error: BaseException | None = None
        self._checkpoint = resume.next_checkpoint if resume else 0
        # What the next checkpoint holds: the segments written since the last one (a resumed journal
        # starts with those of the earlier try).
        self._held: list[dict[str, Any]] = []
        self._held_bytes = 0
        self._held_segments = 0
        for batch in resume.tail if resume else ():
            self._hold(batch)

    def _hold(self, batch: list[dict[str, Any]]) -> None:
        self._held.extend(batch)
        self._held_bytes += len(json.dumps(batch, separators=(",", ":"), default=str))
        self._held_segments += 1

    def append(self, *events: dict[str, Any]) -> None:
        """Store ``events`` (after everything appended before them); return once they are durable."""
        with self._cond:
            if self._error is not None:
                raise RuntimeError(f"the batch journal failed earlier: {self._error}") from self._error
            self._queued.extend(events)
            mine = self._opened  # the batch my events will be written in
            while self._done <= mine:
                if self._error is not None:
                    raise RuntimeError(f"writing the batch journal failed: {self._error}") from self._error
                if self._writing:
                    self._cond.wait()
                    continue
                batch, self._queued = self._queued, []
                self._opened += 1
                self._writing = True
                seq = self.next_seq
                self._cond.release()
                try:
                    self._write(seq, batch)
                except BaseException as exc:
                    self._cond.acquire()
                    self._error = exc
                    self._writing = False
                    self._cond.notify_all()
                    raise
                self._cond.acquire()
                self.next_seq = seq + 1
                self._done += 1
                self._writing = False
                self._cond.notify_all()

    def _write(self, seq: int, batch: list[dict[str, Any]]) -> None:
        self.store.put(segment_name(seq), batch)
        self.writes += 1
        size = len(json.dumps(batch, separators=(",", ":"), default=str))
        if self._held and (
            self._held_bytes + size > CHECKPOINT_BYTES or self._held_segments >= CHECKPOINT_EVERY
        ):
            # The checkpoint holds the segments before this one; this one starts the next checkpoint.
            self.store.put(checkpoint_name(self._checkpoint), [{"e": "upto", "seq": seq}, *self._held])
            self._checkpoint += 1
            self._held, self._held_bytes, self._held_segments = [], 0, 0
        self._hold(batch)


# --------------------------------------------------------------------------- the state


@dataclass
class RowState:
    """What the journal says about one row."""

    sent_at: float | None = None  # wall time of the last ``send`` without an outcome
    ids: list[str] | None = None
    variant_group_id: str | None = None
    recovered: bool = False
    error_code: str | None = None
    error: str | None = None
    uncertain: bool = False
    attempts: int = 0
    #: The try number that recorded the row's ``ok`` (None: a journal from before it was recorded).
    ok_try: int | None = None

    @property
    def done(self) -> bool:
        return self.ids is not None or self.error_code is not None or self.uncertain

    @property
    def in_doubt(self) -> bool:
        return not self.done and self.sent_at is not None


@dataclass
class BatchState:
    """The journal folded: each row's state, each image's terminal status, when the wait began."""

    rows: dict[int, RowState] = field(default_factory=dict)
    statuses: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    #: When each try of the task began waiting (try number -> epoch seconds).
    wait_started: dict[int, float] = field(default_factory=dict)

    def row(self, index: int) -> RowState:
        state = self.rows.get(index)
        if state is None:
            state = self.rows[index] = RowState()
        return state

    def apply(self, event: Mapping[str, Any]) -> None:
        kind = event.get("e")
        if kind == "st":
            for image_id, (status, reason) in event["s"].items():
                self.statuses[image_id] = (status, reason)
            return
        if kind == "wait":
            self.wait_started.setdefault(int(event.get("try") or 0), float(event["t"]))
            return
        row = self.row(int(event["r"]))
        if kind == "send":
            row.sent_at = float(event["t"])
            row.attempts += 1
        elif kind == "back":
            row.sent_at = None
            row.attempts = max(0, row.attempts - 1)
        elif kind == "ok":
            row.ids = [str(i) for i in event["ids"]]
            row.variant_group_id = event.get("g")
            row.recovered = bool(event.get("rec"))
            row.ok_try = event.get("try")
            row.sent_at = None
        elif kind == "rej":
            row.error_code = str(event.get("code") or "ERROR")
            row.error = event.get("msg")
            row.sent_at = None
        elif kind == "lost":
            row.uncertain = True
            row.error = event.get("msg")
            row.sent_at = None

    def committed(self, index: int) -> bool:
        """Whether the credits of the request at ``index`` count against the budget: accepted, maybe
        charged, or an attempt already decided on (sent next, whatever the order of the calls)."""
        row = self.row(index)
        return bool(row.ids) or row.uncertain or (index >= RETRY_STRIDE and row.error_code is None)

    def last_reasons(self, index: int) -> set[str | None]:
        """Why the attempt before the one at ``index`` (a retry) failed: its images' failure reasons."""
        ids = self.row(index - RETRY_STRIDE).ids or []
        return {self.statuses[i][1] for i in ids if i in self.statuses}

    def accepted_ids(self) -> Iterator[str]:
        for state in self.rows.values():
            yield from state.ids or ()

    def pending_ids(self) -> list[str]:
        """Ids Bloom accepted whose terminal status is not known yet, in row order."""
        return [
            image_id
            for index in sorted(self.rows)
            for image_id in self.rows[index].ids or ()
            if image_id not in self.statuses
        ]


def replay(events: list[dict[str, Any]]) -> BatchState:
    """Fold journal events into a :class:`BatchState`."""
    state = BatchState()
    for event in events:
        state.apply(event)
    return state


def status_events(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``st`` events for the terminal records among ``records`` (chunks of :data:`STATUS_CHUNK`)."""
    terminal = {
        str(r["id"]): [str(r["status"]), r.get("failureReason")]
        for r in records
        if r.get("id") and r.get("status") in ("completed", "failed")
    }
    items = list(terminal.items())
    return [{"e": "st", "s": dict(items[i : i + STATUS_CHUNK])} for i in range(0, len(items), STATUS_CHUNK)]


__all__ = [
    "CHECKPOINT_EVERY",
    "RETRY_STRIDE",
    "BatchState",
    "Journal",
    "RowState",
    "SegmentStore",
    "Replayed",
    "read_events",
    "replay",
    "status_events",
]
