"""One try of a batch task (:mod:`._batch`): its jobs, what the journal says about each of them, the
attempts made for refused rows, and each row's manifest record."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_bloom.logic.batch.journal import RETRY_STRIDE, BatchState, Journal
from airflow_provider_bloom.logic.batch.manifest import step_record
from airflow_provider_bloom.logic.pacing import TokenBucket
from airflow_provider_bloom.logic.reconcile import ImageQuery
from airflow_provider_bloom.operators._image_work import RefusalPolicy, attempt_summary

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

    def retry(
        self,
        number: int,
        model: str | None,
        reason: str,
        price: Callable[[Mapping[str, Any], str | None], int],
    ) -> Job:
        """Attempt ``number`` (2, 3...) of this row, on ``model``: the same request otherwise, priced by
        ``price`` (its body and the source image's size)."""
        call = dataclasses.replace(self.call, json={**(self.call.json or {}), "model": model})
        source_size = self.base.get("image_size") if isinstance(self.base.get("image_size"), str) else None
        credits = price(call.json or {}, source_size)
        return Job(
            self.index + (number - 1) * RETRY_STRIDE,
            call,
            {**self.base, "_reason": reason},
            credits,
            self.query,
        )


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

    def extend_chains(
        self,
        refusal: RefusalPolicy,
        budget: float | None,
        price: Callable[[Mapping[str, Any], str | None], int],
        log: Any,
    ) -> list[Job]:
        """Add the next attempt (by ``refusal``, within ``budget``) to every row whose last attempt was
        refused; return the unsent ones.

        Decided from the journal alone (the statuses it holds), so every try and every resumed
        deferral builds the same attempts, with the same row indexes in the journal.
        """
        spent = sum(j.credits for j in self.all_jobs() if self.state.committed(j.index))
        fresh: list[Job] = []
        for job in self.jobs:
            while True:
                attempts = self.attempts(job)
                if not attempts[-1]["sent"]:
                    fresh.append(self.chain(job)[-1])
                    break
                step = refusal.next_attempt(attempts)
                if step is None:
                    break
                model, reason = step
                retry = job.retry(len(attempts) + 1, model, reason, price)
                row = self.state.row(retry.index)
                if not (row.done or row.in_doubt):  # a new request: within the budget?
                    if budget is not None and spent + retry.credits > budget:
                        log.warning(
                            "Row %d is not sent again on %s: max_credits=%g, %d credit(s) spent so far, "
                            "and it costs %d",
                            job.index + 1,
                            model,
                            budget,
                            spent,
                            retry.credits,
                        )
                        break
                    spent += retry.credits
                self.retries.setdefault(job.index, []).append(retry)
        return fresh

    def credits_spent(self, kind: str, budget: float | None) -> dict[str, Any]:
        """What this batch paid (XCom ``bloom_credits``): every accepted request (not the carried
        records), earlier tries' included, how much of it this try sent, and what may have been charged."""
        jobs = self.all_jobs()
        spent = sum(job.credits for job in jobs if self.state.row(job.index).ids)
        this_try = sum(
            job.credits
            for job in jobs
            if self.state.row(job.index).ids and self.state.row(job.index).ok_try == self.try_number
        )
        uncertain = sum(j.credits for j in jobs if self.state.row(j.index).uncertain)
        return {
            "credits": spent,
            "by_kind": {kind: spent} if spent else {},
            "this_try": this_try,
            "reused": spent - this_try,
            "uncertain": uncertain,
            "calls": sum(1 for j in jobs if self.state.row(j.index).ids),
            "budget": budget,
        }

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
