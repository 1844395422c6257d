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

# The Airflow-facing part of the suite: connection form and metadata, hook, operators and sensors
# under dag.test(), triggers, the example DAGs. Not the emulator's own tests (no Airflow in them),
# nor the end-to-end runs (3.3 only; the browser test picks its own versions).
TESTS=(
    tests/test_connection_form.py
    tests/test_connection_hosts.py
    tests/test_connection_and_security.py
    tests/test_generate_operator.py
    tests/test_image_sensor.py
    tests/test_images_trigger.py
    tests/test_image_tools.py
    tests/test_brand_operators.py
    tests/test_credits.py
    tests/test_download.py
    tests/test_pipeline_chain.py
    tests/test_examples.py
)

# The browser test runs on the oldest supported version too (the main run covers 3.3).
declare -A EXTRA_TESTS=([3.1]=tests/browser [3.2]=)

compile_constraints() {
    local minor=$1 version=${NEWEST[$1]} out=constraints/airflow-$1.txt
    local req pins
    req=$(mktemp --suffix=.in)
    pins=$(mktemp --suffix=.txt)
    echo "apache-airflow==$version" >"$req"
    # pydantic 2.14.4 breaks the task runner of Airflow 3.1/3.2 (TITerminalStatePayload needs a
    # discriminator); 3.3 is pinned to 2.14.3 in constraints.txt too.
    echo "pydantic!=2.14.4" >>"$req"
    [[ -f $out ]] && grep -v '^pydantic' "$out" >"$pins"   # uv keeps the other existing pins
    "${UV[@]}" pip compile -q --no-header pyproject.toml "$req" --extra dev --python "$BASE_PYTHON" -o "$pins"
    {
        echo "# Pins for testing on Airflow $version (scripts/test_airflow_versions.sh). Only PyPI is reachable, not"
        echo "# Airflow's own constraints files, so this is uv's resolution of pyproject.toml's dev extra with"
        echo "# apache-airflow==$version. Regenerate with: scripts/test_airflow_versions.sh --compile $minor"
        cat "$pins"
    } >"$out"
    rm -f "$req" "$pins"
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

status=0
for minor in ${@:-3.1 3.2}; do
    [[ -n ${NEWEST[$minor]:-} ]] || { echo "unknown Airflow minor version: $minor" >&2; exit 2; }
    start=$SECONDS
    ensure_venv "$minor"
    venv=.venv-af${minor/./}
    echo "== Airflow $("$venv/bin/python" -c 'import airflow; print(airflow.__version__)') ($venv)"
    # PYTHONPATH: this checkout's package, also in the Airflow subprocesses the tests start.
    if ! PYTHONPATH=$PWD "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not e2e" "${TESTS[@]}" ${EXTRA_TESTS[$minor]}; then
        status=1
    fi
    echo "== Airflow $minor: $((SECONDS - start)) s"
done
exit $status
