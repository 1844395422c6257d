"""estimate_credits (the price list) and BloomAccountOperator against the emulator."""

from __future__ import annotations

import pytest

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.logic.prices import estimate_credits
from airflow_provider_bloom.operators.credits import BloomAccountOperator
from tests.helpers import bloom_dag


@pytest.mark.parametrize(
    ("prompts", "size", "variants", "credits"),
    [
        (1, "2K", 1, 1),
        (3, "2K", 1, 3),
        (["a", "b"], "4K", 3, 12),
        ("one prompt", "4K", 5, 10),
        (0, "2K", 2, 0),
    ],
)
def test_estimate_credits_follows_blooms_price_list(prompts, size, variants, credits):
    assert estimate_credits(prompts, size, variants) == credits


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompts": 2, "image_size": "8K"}, "image_size"),
        ({"prompts": 2, "variant_count": 6}, "variant_count"),
        ({"prompts": 2, "variant_count": 0}, "variant_count"),
        ({"prompts": -1}, "prompts"),
        ({"prompts": None}, "prompts"),
        ({"prompts": 2.5}, "prompts"),
    ],
)
def test_estimate_credits_rejects_what_bloom_would(kwargs, field):
    with pytest.raises(BloomInputError) as err:
        estimate_credits(**kwargs)
    assert err.value.field == field


def test_account_operator_reports_account_workspaces_and_credits(bloom_conn, dag_run, request):
    bloom_conn.set_credits(42)
    with bloom_dag(request.node.name) as dag:
        BloomAccountOperator(task_id="account")
        BloomAccountOperator(task_id="team", workspace_id="ws_emulated_team", include_credits=True)
        BloomAccountOperator(task_id="unknown_ws", workspace_id="ws_nope")
    out = dag_run(dag)
    account = out.xcom("account")
    assert account["email"] == "dev@emulator.local"
    assert account["credits"] == {"balance": 42, "unlimited": False}
    assert {w["id"] for w in account["workspaces"]} >= {None, "ws_emulated_team"}
    assert [w["is_personal"] for w in account["workspaces"]].count(True) == 1
    assert out.states["team"] == "success" and "credits" in out.xcom("team")
    assert out.states["unknown_ws"] == "failed" and out.tries["unknown_ws"] == 1
    assert "WORKSPACE" in out.error("unknown_ws") or "404" in out.error("unknown_ws")
