"""The base every Bloom task shares, operators and sensors alike: the hook, what is known when the DAG is
parsed, the wait options' checks, and Bloom errors as task failures.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import BaseOperator

from airflow_provider_bloom.client.spec import MAX_WAIT_SECONDS, chunked
from airflow_provider_bloom.exceptions import BloomError, BloomInputError
from airflow_provider_bloom.logic.pacing import sync_bucket, take_sync
from airflow_provider_bloom.logic.reconcile import DEFAULT_RECONCILE_TIMEOUT
from airflow_provider_bloom.logic.waiting import check_poll_timeout
from airflow_provider_bloom.tasks.ledger import PaidRequestLedger
from airflow_provider_bloom.tasks.reconciler import Reconciler

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_bloom.hooks.bloom import BloomHook

T = TypeVar("T")
#: ``BloomHook.default_conn_name`` (the hook, and the HTTP stacks under it, load when a task runs).
DEFAULT_CONN_ID = "bloom_default"
ON_FAILURE_CHOICES = ("fail", "skip", "ignore")
#: Extra time Airflow grants a deferral beyond the trigger's own deadline (a backstop only).
DEFERRAL_MARGIN_SECONDS = 60
#: The longest wait_timeout accepted (30 days): beyond it a deadline means nothing.
MAX_WAIT_TIMEOUT = 30 * 24 * 3600.0
#: Seconds a task about to defer first waits in the worker (one long-poll): work that ends in this
#: window returns without deferring at all (no scheduler/triggerer round trip, no defer-exit race).
DEFAULT_DEFER_AFTER = 10.0
#: Seconds after deferring before the trigger may fire: Airflow's scheduler must handle the deferring
#: worker's exit before the task resumes, or it may fail the resumed task ("state mismatch",
#: apache/airflow#72716). The trigger holds an early result until then.
DEFAULT_MIN_DEFER_SECONDS = 10.0


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` (False when unset), like Airflow's own providers."""
    from airflow.configuration import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


def known_at_parse_time(value: Any) -> bool:
    """True for a value written into the DAG file: no Jinja, no XComArg, no mapped argument.

    Such values are checked when the DAG is parsed; the others once rendered, when the task runs.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, (list, tuple)):
        return all(known_at_parse_time(v) for v in value)
    return False


def literal_from_template(value: Any) -> Any:
    """A list rendered by Jinja arrives as its text (``"['id1', 'id2']"``): read it back as the list.

    Anything else is returned unchanged (``render_template_as_native_obj`` DAGs pass real lists).
    """
    if isinstance(value, str) and value.strip()[:1] in ("[", "("):
        try:
            return ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            return value
    return value


def _seconds(field: str, value: Any, *, low: float, high: float, low_open: bool = False) -> float:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and value <= high
    )
    if not ok:
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise BloomInputError(field, f"must be a number of seconds {bound} and <= {high:g}; got {value!r}")
    return float(value)


def check_wait_options(
    *,
    poll_timeout: Any,
    on_failure: Any,
    timeout: Any = None,
    defer_after: Any = DEFAULT_DEFER_AFTER,
    min_defer_seconds: Any = DEFAULT_MIN_DEFER_SECONDS,
) -> None:
    """Check the wait arguments shared by operators and sensors; BloomInputError names the field."""
    check_poll_timeout(poll_timeout)
    if timeout is not None:
        _seconds("wait_timeout", timeout, low=0, high=MAX_WAIT_TIMEOUT, low_open=True)
    _seconds("defer_after", defer_after, low=0, high=MAX_WAIT_SECONDS)
    _seconds("min_defer_seconds", min_defer_seconds, low=0, high=300)
    if on_failure not in ON_FAILURE_CHOICES:
        allowed = ", ".join(map(repr, ON_FAILURE_CHOICES))
        raise BloomInputError("on_failure", f"must be one of {allowed}; got {on_failure!r}")


@contextmanager
def bloom_errors(what: str) -> Iterator[None]:
    """Turn Bloom errors into task failures.

    Errors a retry cannot fix (bad input, auth, billing, forbidden, not found,
    not ready) and paid calls whose answer was lost (a retry might pay twice)
    fail the task without Airflow retries (``AirflowFailException``); transient
    ones propagate so Airflow's retries apply.
    """
    try:
        yield
    except BloomError as exc:
        if exc.permanent or exc.maybe_charged:
            raise AirflowFailException(f"{what} failed: {exc}") from exc
        raise


@contextmanager
def paid_step(what: str, created: Sequence[str], log: Any) -> Iterator[None]:
    """:func:`bloom_errors` for one paid request of many: the failure also names what the earlier
    requests of the task already created (kept, and not paid again by a retry)."""
    try:
        yield
    except BloomError as exc:
        done = list(created)
        kept = f" Already created for earlier inputs (kept, not charged again): {done}." if done else ""
        log.error("%s failed: %s.%s", what, exc, kept)
        with bloom_errors(what + (f" (already created: {done})" if done else "")):
            raise


class BloomBaseOperator(BaseOperator):
    """Base of the Bloom operators: holds ``bloom_conn_id`` and builds the hook lazily.

    Operators that send paid requests also read:

    :param reuse_on_clear: when a task that already succeeded is cleared, reuse what Bloom made for
        it instead of paying for new work (default False: a cleared task makes new images). Retries
        of a failed try always reuse. Needs ``task_state_store`` (Airflow 3.3+) kept across the clear.
    :param reconcile_timeout: seconds to keep looking in Bloom's lists for what a paid request whose
        answer was lost created (Bloom may list new records late).
    """

    def __init__(
        self,
        *,
        bloom_conn_id: str = DEFAULT_CONN_ID,
        reuse_on_clear: bool = False,
        reconcile_timeout: float = DEFAULT_RECONCILE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bloom_conn_id = bloom_conn_id
        self.reuse_on_clear = reuse_on_clear
        if isinstance(reconcile_timeout, bool) or not isinstance(reconcile_timeout, (int, float)):
            raise BloomInputError(
                "reconcile_timeout", f"must be a number of seconds; got {reconcile_timeout!r}"
            )
        if reconcile_timeout < 0:
            raise BloomInputError("reconcile_timeout", f"must be >= 0; got {reconcile_timeout!r}")
        self.reconcile_timeout = float(reconcile_timeout)

    @cached_property
    def hook(self) -> BloomHook:
        from airflow_provider_bloom.hooks.bloom import BloomHook

        return BloomHook(bloom_conn_id=self.bloom_conn_id)

    def paced(self, send: Callable[[], T]) -> T:
        """Send one of many requests of this task within the connection's ``requests_per_minute``.

        A task that sends many requests in a loop (post-processing over 200 ids, uploads, deletions)
        takes a token of the process's bucket for this credential first, so that one task never
        floods Bloom's limit of 120 requests per minute per key with 429s.
        """
        settings = self.hook.settings
        bucket = sync_bucket(settings.base_url, settings.fingerprint, settings.requests_per_minute)
        waited = take_sync(bucket)
        if waited >= 1.0:
            self.log.info(
                "Paced: waited %.1fs to stay within requests_per_minute=%d",
                waited,
                settings.requests_per_minute,
            )
        return send()

    def reconciler(self) -> Reconciler:
        """Return the reconciler: it looks for what a paid request whose answer was lost created (see
        :mod:`~airflow_provider_bloom.logic.reconcile`)."""
        return Reconciler(self.hook, self.log, timeout=self.reconcile_timeout)

    def records_by_id(self, ids: Sequence[str], include_urls: bool | None = None) -> dict[str, Any]:
        """Bloom's records of ``ids`` (of any brand), by id, read 50 at a time; missing ids are absent."""
        records: dict[str, Any] = {}
        chunks = chunked(list(ids))
        for chunk in chunks:
            list_page = functools.partial(self.hook.list_images, ids=chunk, limit=len(chunk))
            page = (
                list_page(include_urls=include_urls)
                if len(chunks) == 1
                else self.paced(functools.partial(list_page, include_urls=include_urls))
            )
            records.update((record["id"], record) for record in page.get("images", []))
        return records

    def ledger(self, context: Context) -> PaidRequestLedger:
        """Return this try's ledger of paid requests (see :class:`.ledger.PaidRequestLedger`)."""
        return PaidRequestLedger(context, self.log, reuse_on_clear=self.reuse_on_clear)


__all__ = [
    "DEFAULT_CONN_ID",
    "BloomBaseOperator",
    "bloom_errors",
    "check_wait_options",
    "default_deferrable",
    "known_at_parse_time",
    "literal_from_template",
    "paid_step",
]
