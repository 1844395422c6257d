#!/usr/bin/env bash
# The test part of `make test`, arranged for a 2-core machine where most tests wait on loopback rather
# than compute:
#   1. side by side: the 3.3 tests without Airflow processes of their own (unit, emulator, dag.test(),
#      docs, the wheel install) and the Airflow-facing tests on 3.1 and 3.2 (scripts/test_airflow_versions.sh,
#      itself two runs side by side), whose output is printed when they end;
#   2. then alone: the 3.3 end-to-end runs (real scheduler/triggerer/api-server deployments, Celery, the
#      demo) and the browser tests, which have the machine to themselves, as users' deployments would.
# SERIAL=1 runs the three parts one after the other. Extra arguments go to both 3.3 pytest runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p test-artifacts
versions_log=test-artifacts/airflow-versions.log
status=0
start=$SECONDS

if [[ ${SERIAL:-0} == 1 ]]; then
    "$PY" -m pytest -q -p no:cacheprovider -m "not e2e and not browser" "$@" || status=1
    PY=$PY bash scripts/test_airflow_versions.sh || status=1
else
    PY=$PY bash scripts/test_airflow_versions.sh >"$versions_log" 2>&1 &
    versions=$!
    "$PY" -m pytest -q -p no:cacheprovider -m "not e2e and not browser" "$@" || status=1
    echo "== 3.3 without Airflow processes: $((SECONDS - start)) s; waiting for the 3.1/3.2 runs"
    wait "$versions" || status=1
    cat "$versions_log"
fi
echo "== part 1: $((SECONDS - start)) s"
part2=$SECONDS
"$PY" -m pytest -q -p no:cacheprovider -m "e2e or browser" "$@" || status=1
echo "== part 2 (3.3 end-to-end and browser): $((SECONDS - part2)) s; all tests: $((SECONDS - start)) s"
exit $status
