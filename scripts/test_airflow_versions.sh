#!/usr/bin/env bash
# Runs the Airflow-facing tests on the older Airflow minor versions this provider supports.
#
#   scripts/test_airflow_versions.sh                 # 3.1 and 3.2 (3.3 is .venv, tested by `make test`)
#   scripts/test_airflow_versions.sh 3.1             # one version
#   scripts/test_airflow_versions.sh --compile 3.1   # re-resolve constraints/airflow-3.1.txt
#
# Each version gets its own virtualenv (.venv-af31, .venv-af32), created with uv from
# constraints/airflow-<minor>.txt. Airflow's own constraints files are not reachable from CI (only PyPI
# is), so these files are uv's resolution of pyproject.toml's dev extra with that Airflow pinned, kept in
# the repository so that every run installs the same versions.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}          # the main venv, which has uv (see the Makefile)
UV=("$PY" -m uv)
BASE_PYTHON=$("$PY" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')

# The newest release of each minor version (pip index versions apache-airflow).
declare -A NEWEST=([3.1]=3.1.8 [3.2]=3.2.2)

# The Airflow-facing part of the suite: connection form, provider metadata, hosts and test_connection,
# the hook and the CLI, operators and sensors under dag.test(), triggers, the example DAGs (parsed, and
# the two small ones run). Left to the 3.3 run, to keep CI short: the emulator's own tests (no Airflow),
# the end-to-end runs, and the slowest dag.test() runs (the 12-image content pipeline, 20 mapped
# prompts, 60-id chunking). Also left out here: tests that read a task's failure message through
# on_failure_callback's context["exception"], which dag.test() on 3.1/3.2 does not fill (the operators
# fail with the right message, the harness can't see it): post-processing, library, brands, credits, downloads.
TESTS=(
    tests/unit/hooks/test_bloom_form.py
    tests/unit/hooks/test_bloom_hosts.py
    tests/unit/hooks/test_bloom_connection.py
    tests/unit/test_init.py
    tests/unit/operators/test_images.py
    tests/unit/sensors/test_images.py
    tests/unit/triggers/test_images.py
    tests/unit/triggers/test_hub.py
    tests/unit/test_budget.py
    tests/unit/test_waiting.py
    tests/test_pipeline_chain.py
    tests/test_examples.py
)
DESELECT=(
    -k "not twenty_prompts and not chunk_of_fifty and not 429_storm_in_the_middle and not content_pipeline_generates and not content_pipeline_updates and not content_pipeline_reports and not nightly_catalogue"
)

# When each was released (the day after its upload to PyPI): resolving with everything newest picks
# libraries that version never met (fastapi 0.165 / cadwyn 9 / pydantic 2.14.4 break Airflow 3.2.2's
# in-process execution API, SQLAlchemy 2.1 is newer than 3.1.8). What Airflow pinned at release is closest
# to what its users run.
declare -A RELEASED=([3.1]=2026-03-12 [3.2]=2026-05-30)
# Packages this project requires in versions newer than those dates.
NEWER_PACKAGES=(
    --exclude-newer-package "apache-airflow-providers-common-compat=2026-11-30T00:00:00Z"
    --exclude-newer-package "playwright=2026-11-30T00:00:00Z"
    --exclude-newer-package "apache-airflow-providers-standard=2026-11-30T00:00:00Z"
)

# The browser test runs on the oldest supported version too (the main run covers 3.3).
# The batch operators under dag.test() run on 3.1 (journal as files, as on 3.2); 3.2 runs the batch's
# kill-and-resume end-to-end test below instead, so that the two versions, run side by side, end together.
# (The review's browser test needs `airflow dags test` to run HITLTrigger, which 3.1/3.2 cannot: the review
# is proven there by its end-to-end run in a real deployment, E2E_TESTS below.)
declare -A EXTRA_TESTS=([3.1]="tests/browser/test_connection_ui.py tests/unit/operators/test_batch.py" [3.2]=)
# End-to-end runs (marked e2e, so a pytest run of their own): on 3.2 the batch operator's resume after its
# task is SIGKILLed mid-submission, where there is no task_state_store and the journal is files beside the
# manifest (about 75 s: the deployment of tests/e2e/stack.py with this version's `airflow`).
declare -A E2E_TESTS=(
    [3.1]=tests/e2e/test_review_e2e.py
    [3.2]=tests/e2e/test_batch_e2e.py::test_a_batch_killed_mid_submission_resumes_without_paying_twice
)

compile_constraints() {
    local minor=$1 version=${NEWEST[$1]} out=constraints/airflow-$1.txt
    local req
    req=$(mktemp --suffix=.in)
    echo "apache-airflow==$version" >"$req"
    {
        echo "# Pins for testing on Airflow $version (scripts/test_airflow_versions.sh). Airflow's own constraints"
        echo "# files are not reachable (only PyPI is), so this is uv's resolution of pyproject.toml's dev extra"
        echo "# with apache-airflow==$version as PyPI stood when it was released (--exclude-newer ${RELEASED[$minor]}),"
        echo "# except for packages this project needs newer. Regenerate: scripts/test_airflow_versions.sh --compile $minor"
        "${UV[@]}" pip compile -q --no-header pyproject.toml "$req" --extra dev --python "$BASE_PYTHON" \
            --exclude-newer "${RELEASED[$minor]}T00:00:00Z" "${NEWER_PACKAGES[@]}"
    } >"$out.tmp"
    mv "$out.tmp" "$out"
    rm -f "$req"
}

ensure_venv() {
    local minor=$1 venv=.venv-af${1/./} cons=constraints/airflow-$1.txt
    local stamp=$venv/.installed
    if [[ -f $stamp && $stamp -nt $cons && $stamp -nt pyproject.toml ]]; then
        return
    fi
    [[ -x $venv/bin/python ]] || "${UV[@]}" venv -q --python "$BASE_PYTHON" "$venv"
    # Exactly the pinned set (sync also removes what is not in it), then this checkout, editable.
    "${UV[@]}" pip sync -q --python "$venv/bin/python" "$cons"
    "${UV[@]}" pip install -q --python "$venv/bin/python" --no-deps -e .
    touch "$stamp"
}

if [[ ${1:-} == --compile ]]; then
    shift
    for minor in ${@:-3.1 3.2}; do compile_constraints "$minor"; done
    exit 0
fi

run_version() {
    local minor=$1 venv=.venv-af${1/./} start=$SECONDS
    echo "== Airflow $("$venv/bin/python" -c 'import airflow; print(airflow.__version__)') ($venv)"
    # PYTHONPATH: this checkout's package, also in the Airflow subprocesses the tests start.
    local rc=0
    PYTHONPATH=$PWD "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not e2e" \
        "${DESELECT[@]}" "${TESTS[@]}" ${EXTRA_TESTS[$minor]} || rc=1
    if [[ -n ${E2E_TESTS[$minor]} ]]; then
        PYTHONPATH=$PWD "$venv/bin/python" -m pytest -q -p no:cacheprovider -m e2e ${E2E_TESTS[$minor]} || rc=1
    fi
    echo "== Airflow $minor: $((SECONDS - start)) s"
    return $rc
}

minors=(${@:-3.1 3.2})
for minor in "${minors[@]}"; do
    [[ -n ${NEWEST[$minor]:-} ]] || { echo "unknown Airflow minor version: $minor" >&2; exit 2; }
    ensure_venv "$minor"
done

# The versions run side by side (each test run is mostly one busy process; CI has 2 cores), each into
# its own log, printed when it ends. PARALLEL=0 runs them one after the other.
status=0
if [[ ${PARALLEL:-1} == 1 && ${#minors[@]} -gt 1 ]]; then
    logs=$(mktemp -d)
    declare -A pids=()
    for minor in "${minors[@]}"; do
        run_version "$minor" >"$logs/$minor.log" 2>&1 &
        pids[$minor]=$!
    done
    for minor in "${minors[@]}"; do
        wait "${pids[$minor]}" || status=1
        cat "$logs/$minor.log"
    done
    rm -rf "$logs"
else
    for minor in "${minors[@]}"; do run_version "$minor" || status=1; done
fi
exit $status
