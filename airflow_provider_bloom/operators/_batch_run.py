"""One try of a batch task (:mod:`._batch`): its jobs, what the journal says about each of them, the
attempts made for refused rows, and each row's manifest record."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_bloom.logic.batch.journal import BatchState, Journal
from airflow_provider_bloom.logic.batch.manifest import step_record
from airflow_provider_bloom.logic.pacing import TokenBucket
from airflow_provider_bloom.logic.reconcile import ImageQuery
from airflow_provider_bloom.operators._image_work import attempt_summary

if TYPE_CHECKING:
    from airflow_provider_bloom.client.core import PreparedCall


@dataclass
class Job:
    """One paid request of a batch: its row number, the checked call, the manifest base, its price."""

    index: int
    call: PreparedCall
    base: dict[str, Any]
    credits: int
    query: Callable[[frozenset[str]], ImageQuery]


@dataclass
class BatchRun:
    """Everything one try of a batch task works with."""

    context: Any
    jobs: list[Job]
    journal: Journal
    state: BatchState
    identity: str
    manifest: Any
    #: The pace of everything this try sends (submissions, status reads), see
    #: :func:`~airflow_provider_bloom.logic.pacing.batch_bucket`.
    bucket: TokenBucket | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    reconciling: threading.Lock = field(default_factory=threading.Lock)
    abort: BaseException | None = None
    refused_in_a_row: int = 0
    lost_in_a_row: int = 0
    #: The try number of this run of the task (recorded with each ``ok``: what this try paid).
    try_number: int = 1
    #: Each row's attempts beyond the first (``on_refused="regenerate"``), by the row's index.
    retries: dict[int, list[Job]] = field(default_factory=dict)

    def all_jobs(self) -> list[Job]:
        """The rows' jobs and the attempts made for refused rows."""
        return [*self.jobs, *(job for chain in self.retries.values() for job in chain)]

    def chain(self, job: Job) -> list[Job]:
        """Every attempt of ``job``'s row, the first one first."""
        return [job, *self.retries.get(job.index, [])]

    def record(self, *events: dict[str, Any]) -> None:
        """Journal ``events`` (durable once this returns), then apply them to this try's state."""
        if not events:
            return
        self.journal.append(*events)
        with self.lock:
            for event in events:
                self.state.apply(event)

    def attempts(self, job: Job) -> list[dict[str, Any]]:
        """The attempts of ``job``'s row so far, in :class:`~._image_work.RefusalPolicy`'s shape."""
        out = []
        for number, attempt in enumerate(self.chain(job), start=1):
            row = self.state.row(attempt.index)
            ids = row.ids or []
            known = [self.state.statuses[i] for i in ids if i in self.state.statuses]
            out.append(
                {
                    "model": (attempt.call.json or {}).get("model"),
                    "reason": None if number == 1 else attempt.base.get("_reason"),
                    "image_ids": list(ids),
                    "statuses": [list(s) for s in known] if ids and len(known) == len(ids) else None,
                    "credits": attempt.credits if row.ids else 0,
                    "sent": row.done or row.in_doubt,
                }
            )
        return out

    def row_record(self, job: Job, operation: str, waited: bool) -> dict[str, Any]:
        """A row's manifest record: its final attempt, all attempts' credits and (when it was sent
        again) ``attempt_history``."""
        chain = [
            j
            for j in self.chain(job)
            if j is job or self.state.row(j.index).done or self.state.row(j.index).in_doubt
        ]
        last = chain[-1]
        record = step_record(
            job.base,
            self.state.row(last.index),
            self.state.statuses,
            operation=operation,
            credits=last.credits,
            waited=waited,
            request=last.call.json,
        )
        if len(chain) > 1:
            history = [
                attempt_summary(a) | {"credits": a["credits"]} for a in self.attempts(job)[: len(chain)]
            ]
            record["attempt_history"] = history
            record["model"] = (last.call.json or {}).get("model")
            earlier = sum(a["credits"] for a in history[:-1])
            if isinstance(record.get("credits"), int):
                record["credits"] += earlier
            else:
                record["credits"] = earlier or record.get("credits")
            record["attempts"] = sum(self.state.row(j.index).attempts for j in chain)
        return record


__all__ = ["BatchRun", "Job"]
