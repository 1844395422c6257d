"""BloomCreditsSensor: before a batch, check that the credit balance covers what the batch costs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
)

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.logic.prices import Price, credits_for, estimate_credits, prompt_count
from airflow_provider_bloom.tasks.base import BloomBaseOperator, bloom_errors, literal_from_template

if TYPE_CHECKING:
    from airflow.sdk import Context


class BloomCreditsSensor(BaseSensorOperator, BloomBaseOperator):
    """Stop (or hold) a batch that the Bloom balance cannot pay for.

    The cost is ``required_credits`` when given, else
    :func:`~airflow_provider_bloom.logic.prices.estimate_credits` of ``prompts``, ``image_size``
    and ``variant_count``, plus ``extra_credits`` (e.g. planned resizes). Accounts with ``unlimited``
    credits always pass.

    By default a short balance fails the task at once (no retries) with the numbers in the message.
    With ``wait_for_top_up=True`` it waits instead, checking every ``poke_interval`` (use
    ``mode="reschedule"`` to free the worker slot) until the balance suffices or ``timeout`` passes.
    ``soft_fail=True`` skips the batch instead of failing it.

    :param prompts: the number of prompts, or the prompts (a list, e.g. an upstream task's output). Templated.
    :param image_size: ``"2K"`` (1 credit per image) or ``"4K"`` (2 credits).
    :param variant_count: variants per prompt (1-5).
    :param required_credits: the cost, when you know it better than the estimate. Templated.
    :param extra_credits: credits to add to the estimate (post-processing, a safety margin).
    :param workspace_id: workspace whose balance pays (default: the connection's, else personal). Templated.
    :param wait_for_top_up: wait for a top-up instead of failing.
    :return: ``{"balance", "unlimited", "required"}``.
    """

    template_fields: Sequence[str] = ("prompts", "required_credits", "workspace_id")
    ui_color = "#eef7e8"

    def __init__(
        self,
        *,
        prompts: Any = None,
        image_size: str = "2K",
        variant_count: int = 1,
        required_credits: float | None = None,
        extra_credits: float = 0,
        workspace_id: str | None = None,
        wait_for_top_up: bool = False,
        poke_interval: float = 300,
        timeout: float = 6 * 3600,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.prompts = prompts
        self.image_size = image_size
        self.variant_count = variant_count
        self.required_credits = required_credits
        self.extra_credits = extra_credits
        self.workspace_id = workspace_id
        self.wait_for_top_up = wait_for_top_up
        self._shortfall = ""

    def required(self, prices: Mapping[str, Price] | None = None) -> tuple[float, str]:
        """The credits needed, and how that number was reached (``prices``: the connection's overrides)."""
        if self.required_credits is not None:
            try:
                needed = float(self.required_credits)
            except (TypeError, ValueError):
                raise BloomInputError(
                    "required_credits", f"must be a number; got {self.required_credits!r}"
                ) from None
            if needed < 0:
                raise BloomInputError("required_credits", f"must not be negative; got {needed:g}")
            return needed, f"{needed:g} credits required"
        if self.prompts is None:
            raise BloomInputError(
                "prompts", "pass the planned prompts (or their number), or required_credits"
            )
        prompts = literal_from_template(self.prompts)
        if isinstance(prompts, str) and not prompts.strip().isdigit():
            raise BloomInputError(
                "prompts",
                f"must be a number of prompts or a list of prompts; got the text {prompts[:80]!r} "
                "(a template should render a number, e.g. '{{ ti.xcom_pull(...) | length }}')",
            )
        cost = estimate_credits(prompts, self.image_size, self.variant_count, prices=prices)
        per_image = credits_for("images.generate", {"imageSize": self.image_size}, prices=prices)
        how = (
            f"{prompt_count(prompts)} prompt(s) x {self.variant_count} variant(s) x "
            f"{per_image} credit(s) per "
            f"{self.image_size} image = {cost}"
        )
        if self.extra_credits:
            how += f" + {self.extra_credits:g} extra"
        return cost + float(self.extra_credits), how

    def poke(self, context: Context) -> bool | PokeReturnValue:
        with bloom_errors("Checking Bloom credits"):
            needed, how = self.required(self.hook.settings.prices)
            credits = self.hook.get_credits(workspace_id=self.workspace_id)
        balance, unlimited = credits.get("balance"), bool(credits.get("unlimited"))
        result = {"balance": balance, "unlimited": unlimited, "required": needed}
        if unlimited:
            self.log.info("Unlimited Bloom credits: the batch (%s) can go ahead", how)
            return PokeReturnValue(is_done=True, xcom_value=result)
        if isinstance(balance, (int, float)) and balance >= needed:
            self.log.info("Bloom balance %g covers the batch (%s)", balance, how)
            return PokeReturnValue(is_done=True, xcom_value=result)
        self._shortfall = (
            f"Bloom balance is {_number(balance)} credits but the planned batch needs {needed:g} ({how}); "
            f"short by {needed - float(balance or 0):g}. Top up at https://www.trybloom.ai "
            "or shrink the batch."
        )
        if not self.wait_for_top_up:
            raise AirflowFailException(self._shortfall)
        self.log.warning("%s Waiting for a top-up.", self._shortfall)
        return False

    def execute(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(f"{exc} {self._shortfall}".strip()) from exc


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)
