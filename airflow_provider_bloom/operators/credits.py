"""What a batch costs, and who the connection is: Bloom's account, workspaces and credits.

:func:`estimate_credits` prices a planned batch of generations with the provider's one price list
(:mod:`airflow_provider_bloom.prices`); the check itself is
:class:`~airflow_provider_bloom.sensors.credits.BloomCreditsSensor`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_bloom._spec import check_value, get_operation
from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.operators._base import BloomBaseOperator, bloom_errors
from airflow_provider_bloom.prices import PUBLISHED_PRICES, Price, credits_for

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Bloom's published price per generated image by size (each variant costs as much as an image).
CREDITS_PER_IMAGE: Mapping[str, int] = cast("Mapping[str, int]", PUBLISHED_PRICES["images.generate"])


def prompt_count(prompts: Any) -> int:
    """How many generations a batch makes: a number (or its digits), or the prompts (one per item)."""
    if isinstance(prompts, bool) or prompts is None:
        raise BloomInputError("prompts", "must be a number of prompts or a list of prompts")
    if isinstance(prompts, str) and prompts.strip().isdigit():
        prompts = int(prompts)  # a rendered template ("{{ params.n }}") is a string
    if isinstance(prompts, int):
        count = prompts
    elif isinstance(prompts, str):
        count = 1
    else:
        try:
            count = len(prompts)
        except TypeError:
            raise BloomInputError(
                "prompts", f"must be a number or a list; got {type(prompts).__name__}"
            ) from None
    if count < 0:
        raise BloomInputError("prompts", f"must not be negative; got {count}")
    return count


def estimate_credits(
    prompts: Any,
    image_size: str = "2K",
    variant_count: int = 1,
    prices: Mapping[str, Price] | None = None,
) -> int:
    """Credits a batch of generations costs: ``prompts x variant_count x (1 for 2K, 2 for 4K)``.

    :param prompts: the number of prompts, or the prompts (a list).
    :param image_size: ``"2K"`` or ``"4K"`` (checked against Bloom's spec).
    :param variant_count: variants per prompt, 1-5 (checked against Bloom's spec).
    :param prices: price overrides (a connection's ``prices`` extra; see
        :mod:`airflow_provider_bloom.prices`).

    A resize costs like a generation of the source's size; pass those as extra prompts.
    """
    body = get_operation("images.generate").body
    image_size = check_value("image_size", image_size, body["imageSize"])
    variant_count = check_value("variant_count", variant_count, body["variantCount"])
    request = {"imageSize": image_size, "variantCount": variant_count}
    return prompt_count(prompts) * credits_for("images.generate", request, prices=prices)


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
