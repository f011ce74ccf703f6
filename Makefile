# The README's two commands: `make dev` and `make test`. Everything else is optional.
PYTHON ?= python3
PROJECT_DIR := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Where the pipeline keeps its files and its default MLflow store (stock_assets/paths.py).
DATA_DIR := $(or $(STOCK_ASSETS_DATA_DIR),$(CURDIR)/data)
MLFLOW_UI_PORT ?= 5000
DAGSTER_PORT ?= 3000

.PHONY: dev test test-fast test-slow install browser lint format export mlflow mlflow-ui serve clean test-backend kfp-local

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever the pinned set or the project metadata changes.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'  # as in the Dockerfile, plus dev
	touch $(STAMP)

install: $(STAMP) browser

# The browser of tests/test_mlflow_ui.py: Debian's chromium at /usr/bin/chromium, driven by
# Playwright (a dev extra) through that path; Playwright's own browser download is never used.
browser:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }

# The instance settings (queue limit for `retrain`, run monitoring): dagster_instance.yaml,
# copied when $(DAGSTER_HOME)/dagster.yaml is missing or empty (an edited one is kept).
# The services log at WARNING (the sensor daemon's INFO says "skipped" a dozen times a minute);
# runs still print their steps' messages, warnings and failures. DAGSTER_PORT: the UI's port.
# Ctrl+C stops dagster dev and everything it started within 10 s (stock_assets/dev.py).
dev: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	test -s $(DAGSTER_HOME)/dagster.yaml || cp $(PROJECT_DIR)dagster_instance.yaml $(DAGSTER_HOME)/dagster.yaml
	@echo "Dagster UI: http://127.0.0.1:$(DAGSTER_PORT) (Ctrl+C stops it)"
	exec $(BIN)/python -m stock_assets.dev -h 127.0.0.1 -p $(DAGSTER_PORT) --log-level warning

test: $(STAMP) browser
	mkdir -p $(DAGSTER_HOME)
	test -s $(DAGSTER_HOME)/dagster.yaml || cp $(PROJECT_DIR)dagster_instance.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest
	KFP_BACKEND_OPTIONAL=1 $(MAKE) test-backend

# The backend conformance tier (tests/kfp_backend): the KFP backend's own Go code
# at each supported version over every YAML the exporter emits. Its set-up downloads and builds
# (cached in GOMODCACHE/GOCACHE); it fails when a version did not run, except under `make
# test` on a machine that can get kubeflow/pipelines neither from the module proxy nor a clone.
test-backend: $(STAMP)
	$(BIN)/python -m tests.kfp_backend.harness run

# The two halves of the suite `make test` runs, split on the marker `slow` (pyproject.toml).
# test-fast: the tests that start no graph run, kfp.local, server, browser, other process or
# MLflow store, about 25 s on 2 cores; test-slow: the rest, about 20 minutes.
test-fast: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/python -m pytest -m "not slow"

test-slow: $(STAMP) browser
	mkdir -p $(DAGSTER_HOME)
	test -s $(DAGSTER_HOME)/dagster.yaml || cp $(PROJECT_DIR)dagster_instance.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

export: $(STAMP)
	$(BIN)/python -m exporters.kfp

# The KFP side without a cluster: export the pipeline, run it under kfp.local (one process per
# task, this venv) with one MLflow run in the store `make mlflow-ui` browses, print a summary.
# Arguments: KFP_LOCAL_ARGS='--param days=160 --keep build/kfp-local' (python -m
# exporters.kfp.local --help). Exit status 1 if the pipeline failed.
kfp-local: $(STAMP)
	@STOCK_ASSETS_DATA_DIR=$(DATA_DIR) \
	MLFLOW_TRACKING_URI=$(or $(MLFLOW_TRACKING_URI),sqlite:///$(DATA_DIR)/mlflow.db) \
	  $(BIN)/python -m exporters.kfp.local $(KFP_LOCAL_ARGS)

# Browse the local store (the default when MLFLOW_TRACKING_URI is unset), lean: one worker and
# none of MLflow 3's GenAI job processes (this project submits no such jobs). It prints the
# address to open: the experiment's training runs, not MLflow's GenAI overview.
mlflow-ui: $(STAMP)
	$(BIN)/python -m stock_assets.mlflow_ops.tracking_server --ui \
	  --host 127.0.0.1 --port $(MLFLOW_UI_PORT) --data-dir $(DATA_DIR)

# A real tracking server: SQLite backend and a local artifact destination under data/. Prints
# the address of the experiment's training runs once it answers.
mlflow: $(STAMP)
	$(BIN)/stock-tracking-server --host 127.0.0.1 --port 5001

# Serve models:/stock-prediction@production on 127.0.0.1:5002.
serve: $(STAMP)
	$(BIN)/stock-serve --host 127.0.0.1 --port 5002

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
