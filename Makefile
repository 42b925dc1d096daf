# devicestream: `make up` runs the pipeline, `make test` runs the test suite. Both install first.
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: install up down status lint test test-unit test-fast bench bench-quick clean clean-data

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
	.venv/bin/ruff format --check contract devicestream

test: install lint
	.venv/bin/pytest

test-unit: install lint
	.venv/bin/pytest -m unit

test-fast: install lint
	.venv/bin/pytest -m "not slow"

bench: install
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

clean-data:
	rm -rf var

clean: clean-data
	rm -rf .venv .jars .pytest_cache .ruff_cache
