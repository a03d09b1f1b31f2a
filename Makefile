# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates (or reuses) the virtualenv and installs the project into it.

VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
SOURCES := pyproject.toml $(shell find bot sql -type f -name '*.py' -o -type f -name '*.sql')

.PHONY: demo test lint install clean bench

install: $(VENV)/.installed

$(VENV)/.installed: $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip hatchling
	$(BIN)/python -m pip install -q ".[test,lint]"
	@# Not editable, on purpose: the tests and the demo run what `pip install .` ships.
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation --force-reinstall .
	touch $@

demo: install
	$(BIN)/lockbay demo

# The benchmark: `make bench` (100k users), `make bench ARGS="--scale large"` (1M users).
bench: install
	$(BIN)/python -m pip install -q ".[bench]"
	$(BIN)/python -m bench $(ARGS)

test: lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint --disable-progress-bar sql tests
	$(BIN)/squawk sql/migrations/*.sql

clean:
	rm -rf $(VENV) .lockbay build dist
