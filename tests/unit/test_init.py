"""Provider registration (:func:`airflow_provider_bloom.get_provider_info`): what Airflow's providers
manager, its CLI and the providers page read."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys

from airflow_provider_bloom import get_provider_info
from tests.helpers import API_KEY, REPO, conn_json


def test_provider_info_declares_the_connection_type():
    info = get_provider_info()
    (ctype,) = info["connection-types"]
    assert ctype["connection-type"] == "bloom"
    assert ctype["hook-class-name"] == "airflow_provider_bloom.hooks.bloom.BloomHook"
    behaviour = ctype["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "port", "login"}
    assert behaviour["relabeling"]["password"] == "API key"
    assert behaviour["placeholders"]["host"] == "https://www.trybloom.ai/api/v1"
    assert {"auth_scheme", "workspace_id", "brand_session_id", "timeout", "max_retries"} <= set(
        ctype["conn-fields"]
    )
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                __import__(module)  # every declared module exists and imports


def airflow_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=180,
        check=False,
    )


def json_rows(stdout: str) -> list[dict]:
    """The JSON table the CLI prints (log lines may precede it)."""
    return json.loads(stdout[stdout.index("[{") :])


def test_airflow_cli_lists_the_provider_and_tests_the_connection(bloom_emulator):
    listed = airflow_cli("providers", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "airflow-provider-bloom" in {p["package_name"] for p in json_rows(listed.stdout)}
    hooks = airflow_cli("providers", "hooks", "-o", "json")
    assert any(h.get("connection_type") == "bloom" for h in json_rows(hooks.stdout)), hooks.stdout[-2000:]
    tested = airflow_cli(
        "connections",
        "test",
        "bloom_default",
        env={"AIRFLOW_CONN_BLOOM_DEFAULT": conn_json(bloom_emulator.base_url)},
    )
    assert tested.returncode == 0, tested.stdout[-2000:] + tested.stderr[-2000:]
    assert "Connection success!" in tested.stdout
    assert bloom_emulator.requests()["by_operation"].get("account.get") == 1  # the CLI really called Bloom
    assert API_KEY not in tested.stdout + tested.stderr


def test_provider_metadata_reads_well_on_the_providers_page():
    info = get_provider_info()
    # The providers page strips [`_<>] from the description (RST markup): keep it plain text.
    assert not re.search(r"[`_<>]", info["description"]), info["description"]
    for path in info["extra-links"]:
        module, name = path.rsplit(".", 1)
        assert getattr(importlib.import_module(module), name).name.startswith(("Bloom image", "Bloom batch"))
    pyproject = (REPO / "pyproject.toml").read_text()
    docs = re.search(r'^Documentation = "([^"]+)"', pyproject, re.M).group(1)  # [project.urls]
    assert docs.startswith("https://") and "airflow.apache.org" not in docs
