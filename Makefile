# Everything a newcomer needs: `make run` starts the hub, `make test` runs the tests.
# Both create .venv and install the project into it first; nothing else is installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint breaking stubs check-stubs clean bench bench-smoke

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

## Start the hub on 127.0.0.1:50051 with every mock studio (reelhouse, tablehouse, livehouse, instanthouse) and
## an embedded SQLite database; it prints a sandbox operator's API key.
run: $(STAMP)
	$(VENV)/bin/hub dev

## Run the whole test suite (MariaDB tests need 127.0.0.1:3306; they must pass when CI=true), in TEST_WORKERS
## processes (pytest-xdist; each has its own MariaDB test database): much of a test is waiting on a database, a
## studio or a hub process, so two keep two cores busy. TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

## Lint the contract (buf STANDARD) and the Python (ruff, mypy, then lint-imports for the dependency rules:
## adapters/ and mock_providers/ import nothing from hub/, hub layers depend downward, protobuf stays at the
## edge; all in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache --no-logo

## Fail if proto/ breaks the contract of CONTRACT_BASE (default HEAD~1; on a branch, CONTRACT_BASE=main).
## An intended break is declared by a `Contract-Break: <reason>` line in a commit message.
CONTRACT_BASE ?= HEAD~1
breaking: $(STAMP)
	$(PY) scripts/check_breaking.py $(CONTRACT_BASE)

## Regenerate the casinohub client package from proto/.
stubs: $(STAMP)
	$(PY) scripts/gen_stubs.py

## Fail if the committed stubs differ from what proto/ generates.
check-stubs: $(STAMP)
	$(PY) scripts/check_stubs.py

## Benchmark the hub beside its baselines (~15 min on a busy 2-core machine; MariaDB on 127.0.0.1:3306); see bench/README.md.
bench: $(STAMP)
	$(PY) -m bench

## Every benchmark scenario, tiny (under a minute), no thresholds: fails only on a crash or a wrong result.
bench-smoke: $(STAMP)
	$(PY) -m bench --smoke

clean:
	rm -rf $(VENV) .pytest_cache
