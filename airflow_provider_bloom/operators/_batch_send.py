"""What one try of a batch task sends to Bloom, at the pace of its token bucket (:mod:`._batch`, steps
4-6): the rows in doubt settled from Bloom's lists, the requests from threads (each journalled before it
goes out; a 429 sends it again, a lost answer is reconciled, a refusal is recorded), and the status
reads (the progress line's peeks, the sweeps of every pending image).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_bloom.client.spec import MAX_IDS_PER_CALL, chunked
from airflow_provider_bloom.exceptions import (
    BloomAPIError,
    BloomConflictError,
    BloomError,
    BloomNotFoundError,
    BloomRateLimitError,
    BloomTransportError,
    BloomValidationError,
    ReconcileError,
)
from airflow_provider_bloom.logic.batch.journal import status_events
from airflow_provider_bloom.logic.batch.progress import Progress, duration
from airflow_provider_bloom.logic.pacing import TokenBucket, batch_bucket, take_sync
from airflow_provider_bloom.logic.reconcile import Attempt, answer_lost, is_open_ended
from airflow_provider_bloom.logic.records import answer_ids, valid_answer
from airflow_provider_bloom.operators._batch_run import BatchRun, Job
from airflow_provider_bloom.tasks.base import bloom_errors

if TYPE_CHECKING:
    from airflow_provider_bloom.hooks.bloom import BloomHook, Send
    from airflow_provider_bloom.tasks.reconciler import Reconciler

#: Rows refused in a row, with nothing accepted, before the batch stops (a wrong brand, a bad key...).
STOP_AFTER_REFUSALS = 20
#: Answers lost in a row (a 5xx after sending, a cut connection...) before the batch stops: an outage,
#: not bad luck; the next try settles those requests from Bloom's list instead of waiting out each one.
STOP_AFTER_LOST = 5
#: Attempts at a request the connection refused before it was sent, before the task fails (and retries).
MAX_UNSENT_ATTEMPTS = 6
#: Seconds added to both ends of the time window when a later try settles a row in doubt (this machine's
#: wall clock and the dead try's may differ).
CROSS_TRY_SKEW = 5.0
#: Bloom's refusals of one row (bad request, source not found, conflict): the batch goes on without it.
#: Auth, billing and permission refusals stop the batch (they hold for every row).
ROW_REFUSALS = (BloomValidationError, BloomNotFoundError, BloomConflictError)


class BatchSender:
    """Send one try's requests and status reads (``run``) through ``hook``, at ``run.bucket``'s pace.

    :param reconciler: makes the reconciler that looks for what a request whose answer was lost created.
    """

    def __init__(
        self, run: BatchRun, hook: BloomHook, log: Any, operation: str, reconciler: Callable[[], Reconciler]
    ) -> None:
        self.run, self.hook, self.log, self.operation, self.reconciler = run, hook, log, operation, reconciler

    # -- 4: rows in doubt -------------------------------------------------------------------------
    def settle_in_doubt(self) -> None:
        """Settle the requests an earlier try sent without recording the answer: from Bloom's lists,
        never by sending them again."""
        run = self.run
        doubt = [job for job in run.all_jobs() if run.state.row(job.index).in_doubt]
        if not doubt:
            return
        self.log.warning(
            "%d request(s) went out in an earlier try whose answer was never recorded: looking for what "
            "they created in Bloom's list (they are not sent again)",
            len(doubt),
        )
        for job in doubt:
            sent_at = run.state.row(job.index).sent_at or time.time()
            now = time.monotonic()
            attempt = Attempt(
                sent=now - (time.time() - sent_at) - CROSS_TRY_SKEW, failed=now, open_ended=True
            )
            lost = BloomTransportError(
                "the try that sent it ended before its answer was recorded",
                operation_id=self.operation,
                maybe_charged=True,
            )
            self.recover(job, lost, attempt)

    def recover(self, job: Job, lost: BloomError, attempt: Attempt) -> None:
        """Adopt what a request whose answer was lost created, or record it as uncertain (never resent)."""
        run = self.run
        with (
            run.reconciling
        ):  # one lookup at a time (the reconciler reads Bloom's clock off the hook's session)
            with run.lock:
                exclude = frozenset(run.state.accepted_ids())
            try:
                found = self.reconciler().images(job.query(exclude), lost, attempt)
            except ReconcileError as exc:
                event = {"e": "lost", "r": job.index, "msg": str(exc)[:500]}
                self.log.error("Row %d: %s", job.index + 1, exc)
            else:
                event = {
                    "e": "ok",
                    "r": job.index,
                    "ids": found.ids,
                    "g": found.records[0].get("variantGroupId"),
                    "rec": True,
                    "try": run.try_number,
                }
                self.log.warning("Row %d: recovered %s after its answer was lost", job.index + 1, found.ids)
            run.record(event)

    # -- 5: submission ------------------------------------------------------------------------------
    def submit(self, jobs: list[Job], max_in_flight: int | None) -> None:
        """Send those of ``jobs`` not sent yet from ``max_in_flight`` threads (default: enough for the
        pace); a failure stops the threads and is kept in ``run.abort``."""
        run = self.run
        todo = [
            job for job in jobs if not run.state.row(job.index).done and not run.state.row(job.index).in_doubt
        ]
        if not todo:
            return
        settings = self.hook.settings
        per_minute = settings.requests_per_minute
        bucket = run.bucket or batch_bucket(per_minute)
        threads = max_in_flight or min(32, max(2, per_minute // 120))
        progress = Progress(total=len(jobs), given_per_minute=per_minute, already=len(jobs) - len(todo))
        self.log.info(
            "Submitting %d request(s) at up to %d/min (requests_per_minute), %d at a time",
            len(todo),
            per_minute,
            threads,
        )
        pending = iter(todo)
        take = threading.Lock()

        def next_job() -> Job | None:
            with take:
                if run.abort is not None:
                    return None
                return next(pending, None)

        def worker() -> None:
            while (job := next_job()) is not None:
                try:
                    self._send(job, send, bucket, progress)
                except BaseException as exc:  # noqa: BLE001 - stop the batch, raised below
                    with take:
                        run.abort = run.abort or exc
                if progress.due():
                    self._peek(bucket, progress)
                    self.log.info("%s", progress.line())

        started = time.monotonic()
        with (
            self.hook.single_try(connections=threads) as send,
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bloom-batch") as pool,
        ):
            futures = [pool.submit(worker) for _ in range(threads)]
            try:
                for future in futures:
                    future.result()
            except BaseException as exc:  # e.g. execution_timeout: stop the threads, then leave
                with take:
                    run.abort = run.abort or exc
                raise
        self.log.info("%s", progress.line())
        self.log.info("Submission took %s", duration(time.monotonic() - started))

    def _send(self, job: Job, send: Send, bucket: TokenBucket, progress: Progress) -> None:
        run = self.run
        unsent = 0
        while True:
            take_sync(bucket)
            run.record({"e": "send", "r": job.index, "t": round(time.time(), 3)})
            sent = time.monotonic()
            try:
                answer = send(job.call)
                if not valid_answer(answer):
                    raise BloomTransportError(
                        f"answer without image ids: {answer!r:.200}",
                        operation_id=self.operation,
                        maybe_charged=True,
                    )
            except BloomRateLimitError as exc:  # Bloom refused it: nothing happened, send it again
                self._back(job)
                bucket.penalize(exc.retry_after)
                with run.lock:
                    progress.rate_limited += 1
                continue
            except BloomError as exc:
                if answer_lost(exc):
                    with run.lock:
                        run.lost_in_a_row += 1
                        outage = run.lost_in_a_row >= STOP_AFTER_LOST
                    if outage:  # Bloom is failing every answer: stop; the retry settles what is in doubt
                        raise BloomError(
                            f"Bloom's answers to {STOP_AFTER_LOST} requests in a row were lost "
                            f"(last: {exc}). "
                            "Stopping the batch: its next try looks in Bloom's list for what those requests "
                            "made (they are never sent again) and goes on with the rest."
                        ) from exc
                    self.recover(job, exc, Attempt(sent, time.monotonic(), is_open_ended(exc)))
                    with run.lock:
                        if run.state.row(job.index).uncertain:
                            progress.uncertain += 1
                        else:
                            progress.submitted += 1
                    return
                if isinstance(exc, BloomTransportError) and unsent < MAX_UNSENT_ATTEMPTS:  # provably not sent
                    self._back(job)
                    unsent += 1
                    time.sleep(min(30.0, 0.5 * 2**unsent))
                    continue
                if isinstance(exc, ROW_REFUSALS):  # this row only; nothing was charged
                    self._refused(job, exc, progress)
                    return
                self._back(job)
                raise
            event = {
                "e": "ok",
                "r": job.index,
                "ids": answer_ids(answer),
                "g": answer.get("variantGroupId"),
                "try": run.try_number,
            }
            run.journal.append(event)
            with run.lock:
                run.state.apply(event)
                run.refused_in_a_row = run.lost_in_a_row = 0
                progress.submitted += 1
            return

    def _peek(self, bucket: TokenBucket, progress: Progress) -> None:
        """For the progress line: the statuses of the 50 oldest images not known to be done (one GET
        within the budget every progress tick; what it learns is journalled, so the final sweep is
        shorter). A failed look only leaves the counts as they were."""
        run = self.run
        with run.lock:
            oldest = run.state.pending_ids()[:MAX_IDS_PER_CALL]
        if oldest:
            take_sync(bucket)
            try:
                page = self.hook.list_images(ids=oldest, limit=len(oldest))
            except BloomError as exc:
                self.log.info("Could not read image statuses for the progress line: %s", exc)
            else:
                run.record(*status_events(page.get("images", [])))
        with run.lock:
            done = [status for status, _ in run.state.statuses.values()]
        progress.completed, progress.failed = done.count("completed"), done.count("failed")

    def _back(self, job: Job) -> None:
        self.run.record({"e": "back", "r": job.index})

    def _refused(self, job: Job, exc: BloomAPIError, progress: Progress) -> None:
        run = self.run
        event = {"e": "rej", "r": job.index, "code": exc.code or str(exc.status), "msg": str(exc)[:500]}
        run.journal.append(event)
        with run.lock:
            progress.rejected += 1
            run.state.apply(event)
            run.refused_in_a_row += 1
            stop = run.refused_in_a_row >= STOP_AFTER_REFUSALS and not any(
                True for _ in run.state.accepted_ids()
            )
        self.log.warning("Row %d refused by Bloom: %s", job.index + 1, exc)
        if stop:
            raise AirflowFailException(
                f"Bloom refused the first {STOP_AFTER_REFUSALS} requests of this batch and accepted none "
                f"(last: {exc}); stopping before the rest. Nothing was charged for them."
            )

    # -- 6: status reads ------------------------------------------------------------------------------
    def sweep(self) -> None:
        """Read every pending image's status (50 ids a request, within the budget); journal the terminal."""
        run = self.run
        pending = run.state.pending_ids()
        if not pending:
            return
        bucket = run.bucket or batch_bucket(self.hook.settings.requests_per_minute)
        with bloom_errors("Reading the batch's image statuses"):
            for chunk in chunked(pending):
                take_sync(bucket)
                page = self.hook.list_images(ids=chunk, limit=len(chunk))
                run.record(*status_events(page.get("images", [])))


__all__ = ["BatchSender"]
