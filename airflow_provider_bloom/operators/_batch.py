"""The engine of the batch operators (:mod:`.batch`): one task submits thousands of paid requests at
the key's rate, records each in a durable journal, resumes after a kill, waits in the triggerer, and
writes a manifest.

A run of a batch task, on every try and after every deferral:

1. **plan**: the subclass turns its input into jobs, each a checked request
   (:class:`~._batch_run.Job`); a bad row fails the task before anything is sent, listing every problem;
2. **open the journal** of this batch (:mod:`airflow_provider_bloom.logic.batch.journal`): Airflow's
   ``task_state_store`` where Airflow has it (3.3+), else a folder beside the manifest, in the same
   storage (see :func:`._batch_store.journal_store`); replay it;
3. **guard** the spend: ``max_credits`` against the whole batch's price, and Bloom's balance against
   what is left to send;
4. **settle rows in doubt** (sent by a try that died before the answer was recorded) with the
   reconciler, never by sending again (this step, the next and the sweeps:
   :class:`._batch_send.BatchSender`);
5. **submit** the rest from ``max_in_flight`` threads, paced by one token bucket of
   ``requests_per_minute`` (a 429 pauses and slows it, and the row goes out again: Bloom refused it);
6. **wait**: statuses are swept 50 ids a request; with ``deferrable=True`` the task defers on
   :class:`~airflow_provider_bloom.triggers.images.BloomImagesTrigger` for at most
   :data:`MAX_DEFERRED_IDS` of the newest pending ids (small trigger arguments at any batch size),
   and repeats on resume until nothing is pending;
7. **write the manifest** (JSON Lines) to ``output_path`` and return its summary.

One try's state (its jobs, the journal folded, the attempts made for refused rows, each row's record)
is a :class:`._batch_run.BatchRun`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_bloom.client.spec import MAX_WAIT_SECONDS, get_operation
from airflow_provider_bloom.exceptions import BloomError, BloomInputError, BloomPaymentError
from airflow_provider_bloom.links import MANIFEST_XCOM_KEY
from airflow_provider_bloom.logic.batch.journal import (
    RETRY_STRIDE,
    Journal,
    read_events,
    replay,
    status_events,
)
from airflow_provider_bloom.logic.batch.manifest import summary, to_jsonl
from airflow_provider_bloom.logic.pacing import batch_bucket
from airflow_provider_bloom.logic.prices import credits_for, kind_of
from airflow_provider_bloom.operators._batch_run import BatchRun, Job
from airflow_provider_bloom.operators._batch_send import BatchSender
from airflow_provider_bloom.operators._batch_store import (
    batch_identity,
    default_manifest_path,
    describe_store,
    journal_store,
)
from airflow_provider_bloom.operators._image_work import (
    DEFAULT_FALLBACK_MODELS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_PAUSE,
    RefusalPolicy,
)
from airflow_provider_bloom.tasks.base import (
    DEFAULT_DEFER_AFTER,
    DEFAULT_MIN_DEFER_SECONDS,
    BloomBaseOperator,
    bloom_errors,
    check_wait_options,
    default_deferrable,
    known_at_parse_time,
)
from airflow_provider_bloom.tasks.ledger import CREDITS_XCOM_KEY, clear_round, credit_budget
from airflow_provider_bloom.tasks.storage import is_local, storage_path
from airflow_provider_bloom.tasks.waiting import images_from_event

if TYPE_CHECKING:
    from airflow.sdk import Context


#: The most ids one deferral hands to the trigger (its arguments stay under ~8 KB at any batch size).
MAX_DEFERRED_IDS = 200


class BloomBatchOperator(BloomBaseOperator):
    """Base of the batch operators: see :mod:`._batch` for the steps and :mod:`.batch` for the classes.

    :param output_path: where the manifest goes: a path or any ``ObjectStoragePath`` URL, e.g.
        ``s3://aws_default@bucket/bloom/{{ ds }}/generate.jsonl``. Default:
        ``$AIRFLOW_HOME/bloom-batches/<dag>/<run>/<task>.jsonl``. Templated.
    :param max_credits: refuse to start when the batch costs more, by Bloom's published prices.
    :param check_balance: read Bloom's balance (``GET /credits``) first and refuse to start when it
        cannot pay for what is left to send.
    :param max_in_flight: requests out at once (default: enough for ``requests_per_minute`` at about
        half a second a request, between 2 and 32).
    :param wait_for_completion: wait until every image is terminal before writing the manifest.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param wait_timeout: seconds one try may wait; then the manifest is written with the images still
        running as ``pending`` and the try fails (a retry waits again, sending nothing).
    :param poll_timeout: seconds Bloom may hold each long-poll (1..295).
    :param on_failure: when a row ends failed, refused or uncertain: ``"ignore"`` (default: the manifest
        says so), ``"fail"`` or ``"skip"`` the task (after the manifest is written).
    :param defer_after: deferrable mode: seconds to wait in the worker first (one long-poll); a batch
        whose images end within it needs no deferral (default 10; 0 defers at once).
    :param min_defer_seconds: the trigger fires no sooner than this after a deferral (Airflow's
        defer-exit race).
    :param on_refused: generations and edits: ``"report"`` (default: a refused row is ``failed`` in the
        manifest) or ``"regenerate"``: a row whose images all failed for ``content_safety`` is sent
        again on the next of ``fallback_models`` (default ``["standard"]``), for ``rate_limited`` on the
        same model after ``retry_pause`` seconds, at most ``max_attempts`` requests per row. Each attempt
        is journalled like any request (a retry of the task never pays for one twice); the row's
        manifest record shows the final images and lists every attempt (``attempt_history``). Attempts
        that would pass ``max_credits`` are not sent.

    Pushes XCom ``bloom_credits`` (what the batch spent; see the credits how-to).
    """

    operation: ClassVar[str]
    action: ClassVar[str]
    template_fields: Sequence[str] = ("output_path", "max_credits")
    ui_color = "#fde2c8"

    def __init__(
        self,
        *,
        output_path: Any = None,
        max_credits: float | str | None = None,
        check_balance: bool = True,
        max_in_flight: int | None = None,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        wait_timeout: float = 3600,
        poll_timeout: int = MAX_WAIT_SECONDS,
        on_failure: str = "ignore",
        defer_after: float = DEFAULT_DEFER_AFTER,
        min_defer_seconds: float = DEFAULT_MIN_DEFER_SECONDS,
        on_refused: str = "report",
        fallback_models: Sequence[str] | None = DEFAULT_FALLBACK_MODELS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_pause: float = DEFAULT_RETRY_PAUSE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_wait_options(
            poll_timeout=poll_timeout,
            on_failure=on_failure,
            timeout=wait_timeout,
            defer_after=defer_after,
            min_defer_seconds=min_defer_seconds,
        )
        if known_at_parse_time(max_credits):
            credit_budget(max_credits)
        self.on_refused = on_refused
        self.fallback_models = fallback_models
        self.max_attempts = max_attempts
        self.retry_pause = retry_pause
        self.refusal = RefusalPolicy.checked(
            self.operation if self.takes_model() else "images.generate",
            on_refused,
            fallback_models,
            max_attempts,
            retry_pause,
        )
        if self.refusal.regenerates and not self.takes_model():
            raise BloomInputError(
                "on_refused", f"'regenerate' applies to generations and edits; {self.action} takes no model"
            )
        if self.refusal.regenerates and not wait_for_completion:
            raise BloomInputError(
                "on_refused",
                "'regenerate' needs wait_for_completion=True (a refusal is known once the image has ended)",
            )
        if max_in_flight is not None and (
            isinstance(max_in_flight, bool)
            or not isinstance(max_in_flight, int)
            or not 1 <= max_in_flight <= 256
        ):
            raise BloomInputError(
                "max_in_flight", f"must be a whole number from 1 to 256; got {max_in_flight!r}"
            )
        self.output_path = output_path
        self.max_credits = max_credits
        self.check_balance = check_balance
        self.max_in_flight = max_in_flight
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.wait_timeout = float(wait_timeout)
        self.poll_timeout = poll_timeout
        self.on_failure = on_failure
        self.defer_after = float(defer_after)
        self.min_defer_seconds = float(min_defer_seconds)

    @classmethod
    def takes_model(cls) -> bool:
        """Whether the operation has a ``model`` (generate, edit): only those can be made again."""
        return "model" in get_operation(cls.operation).body

    # -- what a subclass provides ------------------------------------------------------------
    def plan(self, context: Context) -> list[Job]:
        """The checked jobs of this batch, in order (raise :class:`BatchInputError` for bad input)."""
        raise NotImplementedError

    def carried(self, context: Context) -> list[dict[str, Any]]:
        """Records copied to the manifest unchanged (post-processing: what was not processed)."""
        return []

    # -- the run -----------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        run = self._open(context)
        with bloom_errors(f"Checking the Bloom {self.action} batch's cost"):
            self._guard(run)
        self._sender(run).settle_in_doubt()
        self._submit(run)
        return self._collect(context, run)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        run = self._open(context, resumed=True)
        if isinstance(event, dict) and event.get("status") == "timeout":  # the deadline check below ends it
            records = [i for i in event.get("images") or [] if isinstance(i, dict)]
        else:
            with bloom_errors("Waiting for the batch's images"):
                records = images_from_event(event)
        run.record(*status_events(records))
        return self._collect(context, run)

    # -- 1-2: plan and journal -----------------------------------------------------------------
    def _open(self, context: Context, resumed: bool = False) -> BatchRun:
        with bloom_errors(f"Planning the Bloom {self.action} batch"):
            jobs = self.plan(context)
        manifest = storage_path(self.output_path) if self.output_path else default_manifest_path(context)
        identity = batch_identity(
            self.operation, [job.call for job in jobs], None if self.reuse_on_clear else clear_round(context)
        )
        store = journal_store(context, manifest, identity)
        found = read_events(store)
        events = found.events
        state = replay(events)
        done = sum(1 for j in jobs if state.row(j.index).done)
        if events:
            self.log.info(
                "Resuming batch %s: %d of %d request(s) already settled by an earlier try (journal: %s)",
                identity,
                done,
                len(jobs),
                describe_store(store),
            )
        else:
            self.log.info("Batch %s: %d request(s); journal: %s", identity, len(jobs), describe_store(store))
        run = BatchRun(context, jobs, Journal(store, found), state, identity, manifest)
        run.try_number = int(getattr(context.get("ti"), "try_number", 1) or 1)
        with bloom_errors(f"Planning the Bloom {self.action} batch"):
            self._extend_chains(run)  # the attempts made for refused rows in earlier tries
        # A try resumed from a deferral may follow a full minute of requests: it starts without a burst.
        run.bucket = batch_bucket(self.hook.settings.requests_per_minute, burst=not resumed)
        return run

    # -- 3: the credit guard -------------------------------------------------------------------
    def _guard(self, run: BatchRun) -> None:
        total = sum(job.credits for job in run.jobs)
        left = sum(
            job.credits
            for job in run.jobs
            if run.state.row(job.index).sent_at is None and not run.state.row(job.index).done
        )
        budget = credit_budget(self.max_credits)
        if budget is not None and total > budget:
            raise AirflowFailException(
                f"This batch costs {total:,} credits by Bloom's published prices ({len(run.jobs):,} "
                f"request(s)), more than max_credits={budget:g}. Nothing was sent to Bloom."
            )
        if not self.check_balance or left == 0:
            return
        with bloom_errors("Reading Bloom's credit balance"):
            credits = self.hook.get_credits(workspace_id=self.hook.settings.workspace_id)
        balance = credits.get("balance")
        if not credits.get("unlimited") and isinstance(balance, (int, float)) and balance < left:
            raise AirflowFailException(
                f"Bloom's balance is {balance:g} credits; the {left:,} credits this batch still has to "
                f"spend do not fit. Nothing was sent to Bloom. Top up (or lower the batch), then run again."
            )
        self.log.info(
            "Credits: this batch costs %s (%s still to spend); Bloom's balance: %s",
            total,
            left,
            "unlimited" if credits.get("unlimited") else balance,
        )

    # -- 4-5: rows in doubt, submission (what goes out at the pace: see BatchSender) -----------------
    def _sender(self, run: BatchRun) -> BatchSender:
        return BatchSender(run, self.hook, self.log, self.operation, self.reconciler)

    def _submit(self, run: BatchRun, jobs: list[Job] | None = None) -> None:
        """Send ``jobs`` (default: the rows); if the sender stopped, write the manifest and push the
        credits so far, then fail the try (its retry resumes)."""
        self._sender(run).submit(run.jobs if jobs is None else jobs, self.max_in_flight)
        if run.abort is not None:
            self._write_manifest(run, waited=False)
            self._publish_credits(run.context, run)  # what was paid before the batch stopped
            left = sum(1 for job in run.jobs if not run.state.row(job.index).done)
            # A retry after a top-up resumes, paying nothing twice.
            if isinstance(run.abort, BloomPaymentError):
                raise BloomError(
                    f"Bloom refused the batch for lack of credits ({run.abort}); {left} request(s) are "
                    f"not sent yet. Top up: the task's next try resumes with them (what Bloom already "
                    f"accepted is kept, and not paid again)."
                ) from run.abort
            with bloom_errors(f"Bloom {self.action} batch ({left} request(s) not sent yet)"):
                raise run.abort

    # -- 6: waiting ---------------------------------------------------------------------------------
    def _collect(self, context: Context, run: BatchRun) -> Any:
        self._sender(run).sweep()
        if self.wait_for_completion:
            start = run.state.wait_started.get(run.try_number)
            if start is None:
                start = time.time()
                run.record({"e": "wait", "t": round(start, 3), "try": run.try_number})
            deadline = start + self.wait_timeout
            self._wait_all(run, deadline)
            while self.refusal.regenerates and (again := self._next_attempts(run)):
                if any(run.state.last_reasons(job.index) == {"rate_limited"} for job in again):
                    self.log.info(
                        "Bloom failed image(s) as rate_limited: pausing %.0fs", self.refusal.retry_pause
                    )
                    time.sleep(self.refusal.retry_pause)
                self.log.warning(
                    "Sending %d refused row(s) again: %s",
                    len(again),
                    ", ".join(
                        f"row {job.index % RETRY_STRIDE + 1} on {(job.call.json or {}).get('model')}"
                        for job in again[:20]
                    ),
                )
                self._submit(run, again)
                self._wait_all(run, deadline)
        records = self._write_manifest(run, waited=self.wait_for_completion)
        spent = self._publish_credits(context, run)
        result = summary(str(run.manifest), records, self.operation, credits=spent, batch=run.identity)
        context["ti"].xcom_push(key=MANIFEST_XCOM_KEY, value=str(run.manifest))
        self.log.info(
            "Manifest: %s (%d record(s); %s; %s credits)",
            run.manifest,
            len(records),
            result["counts"],
            result["credits"],
        )
        pending_left = result["counts"].get("pending", 0)
        if pending_left:
            raise BloomError(
                f"{pending_left} row(s) still had images running after wait_timeout={self.wait_timeout:g}s; "
                f"the manifest says which. A retry waits again and sends nothing."
            )
        bad = sum(result["counts"].get(s, 0) for s in ("failed", "partial", "rejected", "uncertain"))
        if bad and self.on_failure != "ignore":
            message = f"{bad} of {len(records)} row(s) did not complete: see {run.manifest}"
            if self.on_failure == "skip":
                raise AirflowSkipException(message)
            raise AirflowFailException(message)
        return result

    def _wait_all(self, run: BatchRun, deadline: float) -> None:
        brief = self.deferrable and self.defer_after > 0
        while (pending := run.state.pending_ids()) and time.time() < deadline:
            self._log_statuses(run)
            if brief:  # images that end within defer_after need no deferral (nor its round trip)
                brief = False
                self._wait_here(run, pending, min(deadline, time.time() + self.defer_after))
                self._sender(run).sweep()
                continue
            if self.deferrable:
                self._defer(pending, deadline)
            self._wait_here(run, pending, deadline)
            self._sender(run).sweep()

    # -- refused rows -------------------------------------------------------------------------------
    def _extend_chains(self, run: BatchRun) -> list[Job]:
        """Add the next attempt to every row whose last attempt was refused; return the unsent ones (see
        :meth:`~._batch_run.BatchRun.extend_chains`)."""
        if not self.refusal.regenerates:
            return []
        return run.extend_chains(self.refusal, credit_budget(self.max_credits), self._price, self.log)

    def _price(self, body: Mapping[str, Any], source_size: str | None) -> int:
        return credits_for(self.operation, body, source_size, self.hook.settings.prices)

    def _next_attempts(self, run: BatchRun) -> list[Job]:
        fresh = self._extend_chains(run)
        return [job for job in fresh if job.index >= RETRY_STRIDE]

    def _publish_credits(self, context: Context, run: BatchRun) -> int:
        """Log and push (XCom ``bloom_credits``) what this batch paid (see
        :meth:`~._batch_run.BatchRun.credits_spent`), and return it."""
        kind = kind_of(self.operation)
        value = run.credits_spent(kind, credit_budget(self.max_credits))
        spent, this_try, uncertain = value["credits"], value["this_try"], value["uncertain"]
        text = f"Bloom credits spent by this batch: {spent} ({kind} {spent})"
        if spent - this_try:
            text += f"; {spent - this_try} of them paid by an earlier try (journalled, not paid again)"
        if uncertain:
            text += f"; {uncertain} more may have been charged (answers lost, not found)"
        self.log.info("%s", text)
        context["ti"].xcom_push(key=CREDITS_XCOM_KEY, value=value)
        return spent

    def _log_statuses(self, run: BatchRun) -> None:
        total = sum(len(run.state.row(j.index).ids or ()) for j in run.jobs)
        done = [s for s, _ in run.state.statuses.values()]
        self.log.info(
            "Waiting: %d of %d image(s) terminal (%d completed, %d failed), %d pending",
            len(done),
            total,
            done.count("completed"),
            done.count("failed"),
            total - len(done),
        )

    def _defer(self, pending: list[str], deadline: float) -> NoReturn:
        from airflow_provider_bloom.triggers.images import BloomImagesTrigger

        ids = pending[-MAX_DEFERRED_IDS:]  # the newest end last: when they are done, most others are too
        now = time.time()
        self.log.info(
            "Deferring: waiting in the triggerer for %d of %d pending image(s)", len(ids), len(pending)
        )
        self.defer(
            trigger=BloomImagesTrigger(
                image_ids=ids,
                bloom_conn_id=self.bloom_conn_id,
                deadline=deadline,
                poll_timeout=self.poll_timeout,
                not_before=now + self.min_defer_seconds,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=max(1.0, deadline - now) + 60),
        )

    def _wait_here(self, run: BatchRun, pending: list[str], deadline: float) -> None:
        ids = pending[-MAX_DEFERRED_IDS:]
        with bloom_errors("Waiting for the batch's images"):
            records = self.hook.wait_for_images(
                ids, timeout=max(1.0, deadline - time.time()), poll_timeout=self.poll_timeout
            )
        run.record(*status_events(records))

    # -- 7: the manifest ---------------------------------------------------------------------------
    def _write_manifest(self, run: BatchRun, waited: bool) -> list[dict[str, Any]]:
        records = [run.row_record(job, self.operation, waited) for job in run.jobs]
        records.extend(self.carried(run.context))
        # Row order across a chain: a step's records and the ones it carried through, by row number.
        records.sort(key=lambda r: (not isinstance(r.get("row"), int), r.get("row") or 0))
        path = run.manifest
        if is_local(path):
            Path(path.path).parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_jsonl(records))
        self._bloom_manifest, self._bloom_records = path, records  # for the lineage method
        return records

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the input file and the manifest as datasets, the new images' provenance."""
        from airflow_provider_bloom.lineage import batch_lineage

        return batch_lineage(self, getattr(self, "_bloom_records", None))


__all__ = [
    "MAX_DEFERRED_IDS",
    "BloomBatchOperator",
]
