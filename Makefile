# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of
# those or a tool for working on the code.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test check lint typecheck fmt services clean bench bench-capacity soak bench-isolation drills fuzz

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

## Run the platform with the Meta sandbox on embedded defaults (SQLite, filesystem broker).
demo: $(VENV)/.runtime
	$(PY) scripts/demo.py

## Run the whole test suite on PostgreSQL, Redis, a real Celery worker and Chromium.
test: $(VENV)/.dev services
	$(PY) -m pytest $(PYTEST_ARGS)

services:
	scripts/ensure-test-services.sh

## Benchmarks (bench/README.md): a private stack on loopback, about 7 minutes, never in CI.
bench: $(VENV)/.dev services
	$(PY) -m bench.webhooks

## Reliability row P2: webhook rate stepped up until p99 > 250 ms, vs bench/baselines/, 5-15 min.
bench-capacity: $(VENV)/.dev services
	$(PY) -m bench.webhooks --capacity

## Reliability row P7: webhooks at 100 req/s for SOAK_SECONDS (one hour) and a few minutes more.
SOAK_SECONDS ?= 3600
soak: $(VENV)/.dev services
	$(PY) -m bench.webhooks --soak $(SOAK_SECONDS)

## Reliability row P4: inbound processing under a 10,000-job flood of the default queue, 4-6 min.
bench-isolation: $(VENV)/.dev services
	$(PY) -m bench.queue_isolation

## Reliability drills W8-W11 (tests/drills): kills and outages on private services, ~7 minutes.
drills: $(VENV)/.dev services
	RUN_DRILLS=1 $(PY) -m pytest tests/drills -s -v -p no:cacheprovider $(PYTEST_ARGS)

## Reliability row F5: atheris on the Meta webhook, signed_request and signature parsers, one hour.
fuzz: $(VENV)/.dev
	$(PY) -m bench.fuzz_parser --seconds 3600

## Format check, lint and type check (run by CI before the tests).
check: lint typecheck

lint: $(VENV)/.dev
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy .

fmt: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf var staticfiles .pytest_cache .mypy_cache .ruff_cache
