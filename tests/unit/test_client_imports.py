"""The client layer at DAG-parse time: the hook and the cheap client modules load no HTTP stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_bloom.client.transport as client_module

ROOT = Path(__file__).resolve().parents[2]


def test_the_hook_and_the_cheap_client_modules_load_no_http_stack_and_no_spec():
    """What operators and sensors import at DAG-parse time: no requests, no transports, no JSON spec parse."""
    code = """
import json, sys
import airflow.sdk
import airflow_provider_bloom.hooks.bloom
import airflow_provider_bloom.client.settings, airflow_provider_bloom.client.files
import airflow_provider_bloom.client.operations, airflow_provider_bloom.client.core
import airflow_provider_bloom.client.spec as spec
heavy = [m for m in ("requests", "urllib3", "airflow_provider_bloom.client.transport") if m in sys.modules]
print(json.dumps({"heavy": heavy, "spec_loaded": spec.load_spec.cache_info().currsize}))
"""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"heavy": [], "spec_loaded": 0}


def test_building_a_client_from_the_hook_loads_the_transport(monkeypatch):
    from airflow_provider_bloom.hooks.bloom import BloomHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_BLOOM_DEFAULT",
        json.dumps({"conn_type": "bloom", "host": "http://127.0.0.1:9/api/v1", "password": "bloom_sk_x"}),
    )
    client = BloomHook().client
    assert isinstance(client, client_module.BloomClient)
    assert client.http.trust_env is False


def test_the_client_package_offers_its_classes_and_loads_the_transport_only_when_asked():
    """``from airflow_provider_bloom.client import BloomClient`` works for code outside Airflow, and merely
    importing the package (as every client module's import does) loads no HTTP library."""
    code = """
import json, sys
import airflow_provider_bloom.client as client
before = [m for m in ("httpx", "airflow_provider_bloom.client.transport") if m in sys.modules]
from airflow_provider_bloom.client import AsyncBloomClient, BloomClient, ClientSettings
from airflow_provider_bloom.client.transport import BloomClient as Sync
print(json.dumps({"before": before, "same": BloomClient is Sync, "names": sorted(client.__all__),
                  "settings": ClientSettings.__name__, "async": AsyncBloomClient.__name__}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {
        "before": [],
        "same": True,
        "names": ["AsyncBloomClient", "BloomClient", "ClientSettings"],
        "settings": "ClientSettings",
        "async": "AsyncBloomClient",
    }
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        import airflow_provider_bloom.client as client

        client.Nope  # noqa: B018
