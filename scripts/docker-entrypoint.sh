#!/usr/bin/env bash
# Entrypoint of the airflow-provider-bloom image (see Dockerfile and docker-compose.yaml).
# Sets the Bloom connection from the environment (the emulator service by default, Bloom when
# BLOOM_API_KEY is set: the same rule as `make demo`, see scripts/bloom_connection.py), then hands
# over to the official Airflow image's entrypoint. An AIRFLOW_CONN_BLOOM_DEFAULT given explicitly wins.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${AIRFLOW_CONN_BLOOM_DEFAULT:-}" ]]; then
    AIRFLOW_CONN_BLOOM_DEFAULT="$(python "${here}/bloom_connection.py" \
        --emulator-url "${BLOOM_EMULATOR_URL:-http://bloom-emulator:8787/api/v1}")"
    export AIRFLOW_CONN_BLOOM_DEFAULT
fi
exec "${AIRFLOW_BASE_ENTRYPOINT:-/entrypoint}" "$@"
