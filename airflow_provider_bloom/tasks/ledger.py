"""Never pay twice: the ledger of Bloom's answers to paid requests, and the credit meter.

When a paid request's answer is lost, the ledger hands over to a ``recover`` function (the operators
use :class:`~airflow_provider_bloom.tasks.reconciler.Reconciler`).

The ledger is keyed by the prepared call itself (:func:`call_identity`: operation, URL, query, body
and the uploaded file's digest), so every paid operator keys its requests the same way.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_bloom.exceptions import BloomError, BloomInputError, BloomServerError
from airflow_provider_bloom.logic.prices import CHARGED_OPERATIONS, credits_for, kind_of
from airflow_provider_bloom.logic.reconcile import Attempt, answer_lost, is_open_ended

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_bloom.client.core import PreparedCall

#: Finds what a lost paid request created: gets the error and the attempt's timing, returns the
#: answer Bloom would have sent, or raises (ReconcileError) when that cannot be known for certain.
Recover = Callable[[BloomError, Attempt], dict[str, Any]]


def has_id(answer: Mapping[str, Any]) -> bool:
    """An answer naming what Bloom created (``id``): what a create, upload or post-processing returns."""
    return isinstance(answer.get("id"), str) and bool(answer["id"])


def clear_round(context: Context | dict[str, Any]) -> int | None:
    """Which clear of the task instance this try belongs to (0 before any clear), or None if unknown.

    Airflow sets ``max_tries = try_number + retries`` when a task instance is cleared and leaves it
    alone on a retry, so ``max_tries - retries`` (the try number at the last clear) is the same for
    every try of one run of the task and changes with each clear. Airflow's own
    ``get_first_reschedule_date`` finds the first try of the current run the same way.
    """
    ti = context.get("ti") if hasattr(context, "get") else None
    task = context.get("task") if hasattr(context, "get") else None
    max_tries = getattr(ti, "max_tries", None)
    retries = (
        getattr(task, "retries", None)
        if task is not None
        else getattr(getattr(ti, "task", None), "retries", None)
    )
    if not isinstance(max_tries, int) or not isinstance(retries, int):
        return None
    return max(0, max_tries - retries)


def _upload_digest(call: PreparedCall) -> str | None:
    return hashlib.sha256(call.upload.content).hexdigest() if call.upload is not None else None


def call_identity(call: PreparedCall) -> dict[str, Any]:
    """What makes two prepared calls the same paid request: operation, URL, query, body, file digest."""
    return {
        "operation": call.op.operation_id,
        "url": call.url,
        "params": call.params,
        "json": call.json,
        "form": call.form,
        "file": _upload_digest(call),
    }


#: The XCom key every paid operator pushes what it spent to (see :class:`CreditMeter`).
CREDITS_XCOM_KEY = "bloom_credits"


class CreditBudgetExceeded(BloomError):
    """The next paid call of a task would pass its ``max_credits`` (raised before it is sent)."""

    permanent = True  # the same call passes the same budget on a retry


def credit_budget(value: Any) -> float | None:
    """``max_credits`` as a number (a rendered template is text); BloomInputError when it is not one."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise BloomInputError("max_credits", f"must be a number of credits >= 0; got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise BloomInputError("max_credits", f"must be a number of credits >= 0; got {value!r}")
    return float(value)


@dataclass
class CreditMeter:
    """What one task instance spends in credits (by :mod:`~airflow_provider_bloom.logic.prices`), and budget.

    ``credits`` counts every call Bloom accepted for this run of the task: in this try, or in an earlier
    try whose answer the ledger reused (``reused``: paid before, not again). A call whose answer was lost
    and could not be found counts in ``uncertain`` (maybe charged). The budget (``max_credits``) covers
    them all: :meth:`check` refuses a call before it is sent when it would pass the budget.
    """

    budget: float | None = None
    by_kind: dict[str, int] = field(default_factory=dict)
    this_try: int = 0
    reused: int = 0
    uncertain: int = 0
    calls: int = 0
    reused_calls: int = 0

    @property
    def credits(self) -> int:
        return sum(self.by_kind.values())

    def check(self, operation: str, credits: int, what: str = "") -> None:
        """Raise :class:`CreditBudgetExceeded` when sending ``operation`` would pass the budget."""
        if self.budget is None:
            return
        spent = self.credits + self.uncertain
        if spent + credits > self.budget:
            raise CreditBudgetExceeded(
                f"max_credits={self.budget:g}: this task has spent {spent} credit(s) so far and the next "
                f"call ({what or operation}) costs {credits}, which would pass the budget. It was not sent."
            )

    def paid(self, operation: str, credits: int, *, reused: bool = False) -> None:
        kind = kind_of(operation)
        self.by_kind[kind] = self.by_kind.get(kind, 0) + credits
        self.calls += 1
        if reused:
            self.reused += credits
            self.reused_calls += 1
        else:
            self.this_try += credits

    def restore(self, value: Mapping[str, Any]) -> None:
        """Continue from :meth:`value` (a deferral carried it): credits already counted by this try."""
        self.by_kind = {str(k): int(v) for k, v in (value.get("by_kind") or {}).items()}
        self.this_try = int(value.get("this_try") or 0)
        self.reused = int(value.get("reused") or 0)
        self.uncertain = int(value.get("uncertain") or 0)
        self.calls = int(value.get("calls") or 0)
        self.reused_calls = int(value.get("reused_calls") or 0)

    def maybe_paid(self, credits: int) -> None:
        self.uncertain += credits

    def value(self) -> dict[str, Any]:
        """The XCom value (:data:`CREDITS_XCOM_KEY`)."""
        return {
            "credits": self.credits,
            "by_kind": dict(self.by_kind),
            "this_try": self.this_try,
            "reused": self.reused,
            "uncertain": self.uncertain,
            "calls": self.calls,
            "reused_calls": self.reused_calls,
            "budget": self.budget,
        }

    def summary(self) -> str:
        """One log line: what this task spent, and what of it an earlier try paid."""
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items())) or "nothing"
        text = f"Bloom credits spent by this task: {self.credits} ({kinds})"
        if self.reused:
            text += (
                f"; {self.reused} of them paid by an earlier try and reused ({self.reused_calls} call(s)), "
                f"so this try spent {self.this_try}"
            )
        if self.uncertain:
            text += f"; {self.uncertain} more may have been charged (answers lost, not found)"
        if self.budget is not None:
            text += f"; max_credits={self.budget:g}"
        return text

    def publish(self, context: Any, log: Any) -> None:
        """Log :meth:`summary` and push :meth:`value` to XCom ``bloom_credits``."""
        log.info("%s", self.summary())
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is not None:
            ti.xcom_push(key=CREDITS_XCOM_KEY, value=self.value())


class PaidRequestLedger:
    """Never pay twice, never lose a paid answer: remember Bloom's answer to each paid POST.

    Where Airflow offers ``task_state_store`` (3.3+), the answer is stored the moment Bloom accepts
    the request; a later try of the same run of the task instance (a retry, or a resume after
    deferral) finds it and does not post again. The key holds a digest of the request (a changed
    request is sent anew) and, unless ``reuse_on_clear``, the clear round (:func:`clear_round`):
    clearing a task makes new images, on every Airflow version, whether or not the store survives
    the clear. Without a store, it says once that a retry may charge again.

    When the answer to a POST is lost after it went out, ``recover`` (if given) looks in Bloom's
    lists for what the request created; what it finds is stored like an answer. An answer that
    ``valid`` rejects (e.g. without ids) counts as lost too.
    """

    def __init__(
        self,
        context: Context | dict[str, Any],
        log: Any,
        *,
        reuse_on_clear: bool = False,
        meter: CreditMeter | None = None,
        prices: Mapping[str, Any] | None = None,
    ) -> None:
        self.log = log
        self.meter = meter
        self.prices = prices
        self.store = context.get("task_state_store") if hasattr(context, "get") else None
        self.round = None if reuse_on_clear else clear_round(context)
        if self.store is None:
            log.warning(
                "Airflow's task_state_store is not available (it arrives in Airflow 3.3): if this task is "
                "retried after Bloom accepted a request, the retry sends it again and may be charged again."
            )

    @staticmethod
    def key_for(operation: str, payload: Any, round: int | None = None) -> str:
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return f"bloom.{operation}.{digest}" + (f".r{round}" if round else "")

    def pay(
        self,
        call: PreparedCall,
        send: Callable[[], dict[str, Any]],
        *,
        recover: Recover | None = None,
        valid: Callable[[dict[str, Any]], bool] | None = None,
        source_size: str | None = None,
        what: str = "",
        attempt: int = 1,
    ) -> dict[str, Any]:
        """Send the prepared paid ``call`` (through ``send``) once per run of the task, keyed by the call.

        With a :class:`CreditMeter`, a call of a priced operation is counted (``source_size``: a resize's
        source size) and refused before it is sent when it would pass the budget (``what`` names it).
        ``attempt`` > 1 keys a deliberate repeat of the same request (a refused image made again) apart
        from the earlier ones: each attempt is paid once per run of the task, like any request.
        """
        operation = call.op.operation_id
        payload = call_identity(call)
        if attempt > 1:
            payload = {**payload, "attempt": attempt}
        credits = (
            credits_for(operation, call.json or {}, source_size, self.prices)
            if self.meter is not None and operation in CHARGED_OPERATIONS
            else None
        )
        return self.run(
            operation,
            payload,
            send,
            recover=recover,
            valid=valid,
            credits=credits,
            what=what,
        )

    def run(
        self,
        operation: str,
        payload: Any,
        post: Callable[[], dict[str, Any]],
        *,
        recover: Recover | None = None,
        valid: Callable[[dict[str, Any]], bool] | None = None,
        credits: int | None = None,
        what: str = "",
    ) -> dict[str, Any]:
        """Post once per run of the task, keyed by ``operation`` and ``payload`` (see :meth:`pay`)."""
        key = self.key_for(operation, payload, self.round)
        earlier = self._earlier(key)
        meter = self.meter if credits is not None else None
        if earlier is not None:
            self.log.info("Bloom already accepted this %s in an earlier try: reusing %s", operation, earlier)
            if meter is not None and credits is not None:
                meter.paid(operation, credits, reused=True)
            return earlier
        if meter is not None and credits is not None:
            meter.check(operation, credits, what)
        sent = time.monotonic()
        try:
            result = post()
            if valid is not None and not valid(result):
                raise BloomServerError(
                    200,
                    None,
                    f"answer without what it must hold: {result!r:.200}",
                    operation_id=operation,
                    maybe_charged=True,
                )
        except BloomError as exc:
            if recover is None or not answer_lost(exc):
                raise
            self.log.warning(
                "Bloom's answer to %s was lost (%s); looking for what it created", operation, exc
            )
            try:
                result = recover(exc, Attempt(sent, time.monotonic(), is_open_ended(exc)))
            except BloomError:
                if meter is not None and credits is not None:
                    meter.maybe_paid(credits)
                raise
            self.log.warning("Recovered what the lost %s created: %s", operation, result)
        if meter is not None and credits is not None:
            meter.paid(operation, credits)
        if self.store is not None:
            try:
                self.store.set(key, result)
            except Exception as exc:
                self.log.warning("Could not record the accepted request in task_state_store: %s", exc)
        return result

    def _earlier(self, key: str) -> dict[str, Any] | None:
        if self.store is None:
            return None
        try:
            earlier = self.store.get(key)
        except Exception as exc:  # a store outage must not block the work; say so
            self.log.warning("Could not read task_state_store (%s); continuing without it", exc)
            return None
        return earlier if isinstance(earlier, dict) else None
