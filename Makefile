# Everything the project needs is installed from its own files into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo test test-fast test-airflow-versions lint docs dist e2e bench emulator clean

# Extras: dev (the tests), docs (`make docs`) and release (`make dist`), in .venv only: the 3.1/3.2 venvs of
# scripts/test_airflow_versions.sh are synced from constraints/airflow-3.x.txt, which do not hold the latter two.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(PY) -m uv pip install --python $(PY) -q -c constraints.txt -e ".[dev,docs,release]"
	touch $(STAMP)

install: $(STAMP)

## Debian's redis-server and postgresql, where missing (the CeleryExecutor end-to-end run starts its own).
system-deps:
	bash scripts/install_system_deps.sh

## The main job: the demo pipeline against the built-in emulator (or Bloom when BLOOM_API_KEY is set).
demo: $(STAMP)
	$(PY) scripts/demo.py

## The whole test suite: lint, format, types, the docs, unit + integration + end-to-end tests, the built
## wheel in a fresh Airflow (tests/test_release.py) and the Airflow-facing tests on 3.1 and 3.2
## (scripts/run_tests.sh: the tests without Airflow processes beside the 3.1/3.2 runs and the end-to-end runs that
## hold no timing claim, then the end-to-end runs that need the machine to themselves).
test: $(STAMP) system-deps
	bash scripts/install_chromium.sh
	bash scripts/install_prism.sh
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(MAKE) docs
	PY=$(PY) bash scripts/run_tests.sh

## The edit-test loop: the unit, emulator and docs tests, no Airflow processes (no scheduler, triggerer,
## api-server, browser or wheel install) and none of the slowest dag.test() runs; a few minutes on 2 cores.
FAST_DESELECT := not e2e and not browser and not release and not slow
test-fast: $(STAMP)
	bash scripts/install_prism.sh
	$(PY) -m pytest -q -p no:cacheprovider -m "$(FAST_DESELECT)" $(PYTEST_ARGS) tests/unit tests/emulator tests/test_docs.py \
		tests/test_root_served.py

## The documentation site (docs/_build/html), built afresh with warnings as errors.
docs: $(STAMP)
	rm -f docs/_build/.built-ok
	$(PY) -m sphinx -b html -E -W --keep-going -q docs docs/_build/html
	touch docs/_build/.built-ok

## The release: sdist and wheel in dist/ (python -m build), checked by twine.
dist: $(STAMP)
	rm -rf dist
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m build --installer uv --sdist --wheel --outdir dist .
	$(PY) -m twine check --strict dist/*

## The Airflow-facing tests again on the newest Airflow 3.1.x and 3.2.x (.venv-af31, .venv-af32).
test-airflow-versions: $(STAMP)
	PY=$(PY) bash scripts/test_airflow_versions.sh

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy

bench: $(STAMP)
	$(PY) bench/run_all.py

e2e: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider -m e2e

emulator: $(STAMP)
	$(PY) -m airflow_provider_bloom.emulator --host 127.0.0.1 --port 8787

clean:
	rm -rf $(VENV) .venv-af31 .venv-af32 output .airflow test-artifacts docs/_build dist build
