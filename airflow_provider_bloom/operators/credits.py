"""What a batch costs, what a run spent, and who the connection is: Bloom's account, workspaces and credits.

:func:`~airflow_provider_bloom.logic.prices.estimate_credits` prices a planned batch of generations with
the provider's one price list; the check itself is
:class:`~airflow_provider_bloom.sensors.credits.BloomCreditsSensor`.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.logic.prices import PUBLISHED_PRICES
from airflow_provider_bloom.tasks.base import BloomBaseOperator, bloom_errors
from airflow_provider_bloom.tasks.ledger import CREDITS_XCOM_KEY

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Bloom's published price per generated image by size (each variant costs as much as an image).
CREDITS_PER_IMAGE: Mapping[str, int] = cast("Mapping[str, int]", PUBLISHED_PRICES["images.generate"])


class BloomAccountOperator(BloomBaseOperator):
    """Who the connection is: account, workspaces and (optionally) the credit balance.

    Handy as a first task (it fails fast on a bad key) and to find a team ``workspace_id``.

    :param include_credits: add ``credits`` (``GET /credits``) for ``workspace_id``.
    :param workspace_id: workspace of the balance (default: the connection's, else personal). Templated.
    :return: ``{"email", "name", "workspaces": [{"id", "name", "is_personal"}], "credits": {"balance",
        "unlimited"}}``.
    """

    template_fields: Sequence[str] = ("workspace_id",)
    ui_color = "#eef7e8"

    def __init__(
        self, *, include_credits: bool = True, workspace_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.include_credits = include_credits
        self.workspace_id = workspace_id

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        with bloom_errors("Reading the Bloom account"):
            account = hook.get_account()
            workspaces = hook.list_workspaces().get("workspaces", [])
            result: dict[str, Any] = {
                "email": account.get("email"),
                "name": account.get("name"),
                "workspaces": [
                    {"id": w.get("id"), "name": w.get("name"), "is_personal": w.get("is_personal")}
                    for w in workspaces
                ],
            }
            if self.include_credits:
                credits = hook.get_credits(workspace_id=self.workspace_id)
                result["credits"] = {"balance": credits.get("balance"), "unlimited": credits.get("unlimited")}
        self.log.info("Bloom account %s, %d workspace(s)", result["email"], len(result["workspaces"]))
        return result


def _credit_values(value: Any) -> list[dict[str, Any]]:
    """The ``bloom_credits`` values of one task (one per map index), whatever shape ``xcom_pull`` gave."""
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, dict)]


def _number(value: Any, field: str) -> float | None:
    """A balance given as a number, its text, or a record holding ``balance`` (a credits check's XCom)."""
    if isinstance(value, str) and value.strip().startswith("{"):  # a rendered record is its text
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            pass
    if isinstance(value, Mapping):
        if value.get("unlimited"):
            return None
        value = value.get("balance")
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BloomInputError(
            field, f"must be a balance (a number, or a record with 'balance'); got {value!r:.80}"
        ) from None


class BloomCreditsReportOperator(BloomBaseOperator):
    """What a DAG run spent in Bloom credits, by task and by kind of call, and whether the balance agrees.

    Sums the ``bloom_credits`` XComs the paid operators of this run pushed (generate, edit, resize,
    remove-background, vectorize, and the batch operators), logs a table and returns a small dict.
    Credits are computed from each request by the provider's price list
    (:mod:`airflow_provider_bloom.logic.prices`); Bloom's answers carry no cost.

    Given the balance at the start of the run (``start_balance``: e.g. the output of a
    :class:`~airflow_provider_bloom.sensors.credits.BloomCreditsSensor` or a
    :class:`BloomAccountOperator` run first), it reads the balance now and compares the drop with the
    sum, unless ``key_shared`` (other runs or people spend on the same workspace, so the drop says
    nothing about this run).

    :param start_balance: the balance at the start: a number, or a record with ``balance`` (and
        ``unlimited``). Templated.
    :param task_ids: the tasks to sum (default: every task of the DAG but this one). Templated.
    :param key_shared: the workspace's balance is spent by others too: do not compare.
    :param workspace_id: workspace of the balance (default: the connection's). Templated.
    :param fail_on_mismatch: fail the task when the balance drop and the sum differ (default False:
        log a warning).
    :return: ``{"credits", "by_task", "by_kind", "reused", "uncertain", "balance_start", "balance_end",
        "balance_drop", "matches"}`` (``matches`` is None when nothing was compared).
    """

    template_fields: Sequence[str] = ("start_balance", "task_ids", "workspace_id")
    ui_color = "#eef7e8"

    def __init__(
        self,
        *,
        start_balance: Any = None,
        task_ids: Sequence[str] | None = None,
        key_shared: bool = False,
        workspace_id: str | None = None,
        fail_on_mismatch: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start_balance = start_balance
        self.task_ids = task_ids
        self.key_shared = key_shared
        self.workspace_id = workspace_id
        self.fail_on_mismatch = fail_on_mismatch

    def _tasks(self, context: Context) -> list[str]:
        if self.task_ids is not None:
            return [self.task_ids] if isinstance(self.task_ids, str) else list(self.task_ids)
        dag = context.get("dag") or getattr(self, "dag", None)
        return [t for t in getattr(dag, "task_ids", []) if t != self.task_id]

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        start = _number(self.start_balance, "start_balance")
        by_task: dict[str, int] = {}
        by_kind: dict[str, int] = {}
        reused = uncertain = 0
        for task_id in self._tasks(context):
            # One task at a time, map indexes left unset: every map index's value (Airflow 3.1-3.3).
            values = _credit_values(ti.xcom_pull(task_ids=[task_id], key=CREDITS_XCOM_KEY))
            if not values:
                continue
            by_task[task_id] = sum(int(v.get("credits") or 0) for v in values)
            for value in values:
                for kind, credits in (value.get("by_kind") or {}).items():
                    by_kind[kind] = by_kind.get(kind, 0) + int(credits)
                reused += int(value.get("reused") or 0)
                uncertain += int(value.get("uncertain") or 0)
        total = sum(by_task.values())
        result: dict[str, Any] = {
            "credits": total,
            "by_task": by_task,
            "by_kind": by_kind,
            "reused": reused,
            "uncertain": uncertain,
            "balance_start": start,
            "balance_end": None,
            "balance_drop": None,
            "matches": None,
        }
        lines = [f"{'task':<32} {'credits':>8}"] + [f"{t:<32} {c:>8}" for t, c in by_task.items()]
        lines += [f"{'  ' + k:<32} {c:>8}" for k, c in sorted(by_kind.items())]
        lines.append(f"{'total':<32} {total:>8}")
        self.log.info("Bloom credits spent by this run:\n%s", "\n".join(lines))
        if reused:
            self.log.info(
                "%d of them were paid by earlier tries of their tasks and reused (a retry spent 0 on them)",
                reused,
            )
        if uncertain:
            self.log.warning("%d more credit(s) may have been charged for answers that were lost", uncertain)
        if self.key_shared:
            self.log.info("key_shared=True: the balance is spent by others too; not comparing it")
            return result
        if start is None:
            self.log.info("No start_balance (or an unlimited account): the balance is not compared")
            return result
        with bloom_errors("Reading Bloom's credit balance"):
            credits = self.hook.get_credits(workspace_id=self.workspace_id)
        if credits.get("unlimited"):
            return result
        end = float(credits.get("balance") or 0)
        drop = start - end
        matches = total <= drop <= total + uncertain
        result.update(balance_end=end, balance_drop=drop, matches=matches)
        if matches:
            self.log.info("Bloom's balance went from %g to %g: a drop of %g, as computed", start, end, drop)
        else:
            message = (
                f"Bloom's balance went from {start:g} to {end:g} (a drop of {drop:g}), but this run's tasks "
                f"computed {total} credit(s)"
                + (f" (+ up to {uncertain} uncertain)" if uncertain else "")
                + ": another user of the key, a price that differs from the provider's list (see the "
                "connection's 'prices' extra), or a task that does not report its spend"
            )
            if self.fail_on_mismatch:
                raise AirflowFailException(message)
            self.log.warning("%s", message)
        return result
