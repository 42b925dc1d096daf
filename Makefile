# devicestream: `make up` runs the pipeline, `make test` runs the test suite, `make compose-test` builds
# every image and runs compose.yaml end to end (scripts/compose_test.sh). All install first.
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: install up down status lint test test-unit test-fast compose-test bench bench-quick clean clean-data

install:
	@bash scripts/install.sh

up: install
	$(PY) -m devicestream up

down:
	$(PY) -m devicestream down

status:
	$(PY) -m devicestream status

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check contract kafka_io service_kit devicestream

test: install lint
	.venv/bin/pytest

test-unit: install lint
	.venv/bin/pytest -m unit

test-fast: install lint
	.venv/bin/pytest -m "not slow"

compose-test: install
	@bash scripts/compose_test.sh

bench: install
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

clean-data:
	rm -rf var

clean: clean-data
	rm -rf .venv .jars .pytest_cache .ruff_cache
