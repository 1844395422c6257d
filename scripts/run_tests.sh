#!/usr/bin/env bash
# The test part of `make test`, arranged for a 2-core machine where most tests wait on loopback rather
# than compute:
#   1. side by side: the 3.3 tests without Airflow processes of their own (unit, emulator, dag.test(),
#      docs, the wheel install) and the Airflow-facing tests on 3.1 and 3.2 (scripts/test_airflow_versions.sh,
#      itself two runs side by side). The 3.1/3.2 runs end minutes before the 3.3 run; on the core they free,
#      the 3.3 end-to-end tests that need no machine of their own follow them (SHARED below). Their output
#      is printed when they end;
#   2. then alone: the 3.3 end-to-end runs whose timing is what they prove (Airflow's defer-exit race at
#      the demo's speed, a hundred waits on one key's budget, a killed triggerer, Celery, the batch at the
#      key's rate and killed mid-submission), which have the machine to themselves, as users' deployments
#      would.
# SERIAL=1 runs everything one after the other. Extra arguments go to every 3.3 pytest run.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p test-artifacts
versions_log=test-artifacts/airflow-versions.log
status=0
start=$SECONDS

# 3.3 end-to-end and browser tests that hold no timing claim: the connection form, the extra link and the
# Required Action page in Chromium, `make demo` three ways, the review answered through the REST API.
SHARED=(tests/browser tests/e2e/test_demo.py tests/e2e/test_review_e2e.py)
E2E=(-m "e2e or browser")

if [[ ${SERIAL:-0} == 1 ]]; then
    "$PY" -m pytest -q -p no:cacheprovider -m "not e2e and not browser" "$@" || status=1
    PY=$PY bash scripts/test_airflow_versions.sh || status=1
    alone=()
else
    versions_then_shared() {
        local failed=0
        PY=$PY bash scripts/test_airflow_versions.sh || failed=1
        echo "== Airflow 3.1 and 3.2 done at $((SECONDS - start)) s; then the 3.3 tests of SHARED"
        "$PY" -m pytest -q -p no:cacheprovider "${E2E[@]}" "$@" "${SHARED[@]}" || failed=1
        echo "== SHARED done at $((SECONDS - start)) s"
        return $failed
    }
    versions_then_shared "$@" >"$versions_log" 2>&1 &
    versions=$!
    "$PY" -m pytest -q -p no:cacheprovider -m "not e2e and not browser" "$@" || status=1
    echo "== 3.3 without Airflow processes: $((SECONDS - start)) s; waiting for the 3.1/3.2 runs and SHARED"
    wait "$versions" || status=1
    cat "$versions_log"
    alone=()
    for path in "${SHARED[@]}"; do alone+=(--ignore="$path"); done
fi
echo "== part 1: $((SECONDS - start)) s"
part2=$SECONDS
"$PY" -m pytest -q -p no:cacheprovider "${E2E[@]}" "${alone[@]}" "$@" || status=1
echo "== part 2 (3.3 end-to-end runs alone): $((SECONDS - part2)) s; all tests: $((SECONDS - start)) s"
exit $status
