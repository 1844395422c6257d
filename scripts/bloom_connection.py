"""Which Bloom the demo and the docker-compose stack talk to, decided from the environment.

One rule for both (the standalone demo imports this module; the Docker image's entrypoint runs it):

- ``BLOOM_API_KEY`` set: Bloom itself at ``BLOOM_BASE_URL`` (default ``https://www.trybloom.ai/api/v1``)
  with the brand ``BLOOM_BRAND_ID`` (required: onboarding a brand takes minutes, so the demo uses one
  you already have).
- otherwise: the built-in emulator at ``emulator_url`` with a throwaway key and its ready default brand.

Run as a script it prints the ``AIRFLOW_CONN_BLOOM_DEFAULT`` JSON for the compose stack's entrypoint
(``python bloom_connection.py --emulator-url http://bloom-emulator:8787/api/v1``). Nothing here ever
prints or logs the key except that one machine-read line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from airflow_provider_bloom.emulator.config import DEFAULT_BRAND_ID as EMULATOR_BRAND_ID

#: The connection every example DAG uses (``AIRFLOW_CONN_BLOOM_DEFAULT`` in the environment).
CONN_ID = "bloom_default"
CONN_ENV_VAR = "AIRFLOW_CONN_" + CONN_ID.upper()
BLOOM_URL = "https://www.trybloom.ai/api/v1"
#: Any ``bloom_sk_`` key is accepted by the emulator; this one is only for it.
EMULATOR_KEY = "bloom_sk_emulator_demo_key"


class ConfigurationError(ValueError):
    """The environment asks for Bloom but misses something Bloom needs."""


@dataclass(frozen=True)
class BloomTarget:
    """Where the Bloom connection points. ``repr`` never shows the key."""

    mode: str  # "emulator" or "bloom"
    base_url: str
    brand_id: str
    api_key: str
    #: The connection extra ``wait_requests_per_minute`` (each triggerer's wait hub budget), when set.
    wait_requests_per_minute: int | None = None

    def __repr__(self) -> str:
        return f"BloomTarget(mode={self.mode!r}, base_url={self.base_url!r}, brand_id={self.brand_id!r})"

    def describe(self) -> str:
        where = "the built-in emulator" if self.mode == "emulator" else "Bloom"
        return f"{where} at {self.base_url} (brand {self.brand_id})"

    def connection(self) -> dict[str, object]:
        extra: dict[str, object] = {"brand_session_id": self.brand_id}
        if self.wait_requests_per_minute is not None:
            extra["wait_requests_per_minute"] = self.wait_requests_per_minute
        return {"conn_type": "bloom", "host": self.base_url, "password": self.api_key, "extra": extra}

    def connection_json(self) -> str:
        return json.dumps(self.connection())


def wait_budget_from_env(env: Mapping[str, str]) -> int | None:
    """``BLOOM_WAIT_REQUESTS_PER_MINUTE``: each triggerer's wait budget on the key (unset: the default)."""
    raw = (env.get("BLOOM_WAIT_REQUESTS_PER_MINUTE") or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 120:
        raise ConfigurationError(
            f"BLOOM_WAIT_REQUESTS_PER_MINUTE must be a whole number from 1 to 120, not {raw!r}"
        )
    return int(raw)


def target_from_env(env: Mapping[str, str], emulator_url: str) -> BloomTarget:
    """Bloom when ``BLOOM_API_KEY`` is set, else the emulator at ``emulator_url``."""
    key = (env.get("BLOOM_API_KEY") or "").strip()
    budget = wait_budget_from_env(env)
    if not key:
        return BloomTarget("emulator", emulator_url.rstrip("/"), EMULATOR_BRAND_ID, EMULATOR_KEY, budget)
    brand = (env.get("BLOOM_BRAND_ID") or "").strip()
    if not brand:
        raise ConfigurationError(
            "BLOOM_API_KEY is set, so the demo runs against Bloom; it also needs BLOOM_BRAND_ID, the id of a "
            "ready brand in your workspace (unset BLOOM_API_KEY to use the built-in emulator)"
        )
    base_url = (env.get("BLOOM_BASE_URL") or "").strip() or BLOOM_URL
    return BloomTarget("bloom", base_url.rstrip("/"), brand, key, budget)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator-url", required=True, help="the emulator's /api/v1 URL")
    args = parser.parse_args(argv)
    try:
        target = target_from_env(os.environ, args.emulator_url)
    except ConfigurationError as exc:
        print(f"bloom_connection: {exc}", file=sys.stderr)
        return 2
    print(f"Bloom connection '{CONN_ID}': {target.describe()}", file=sys.stderr)
    print(target.connection_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
