# Everything the project needs is installed from its own files into .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo test test-airflow-versions lint e2e bench emulator clean

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

## The whole test suite: lint, format, types, unit + integration + end-to-end tests.
test: $(STAMP) system-deps
	bash scripts/install_chromium.sh
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider
	$(MAKE) test-airflow-versions

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
	rm -rf $(VENV) .venv-af31 .venv-af32 output .airflow test-artifacts
