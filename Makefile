# Two entry points for a fresh machine: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := paystream events streams projections channels schemas deploy tests

.PHONY: demo test lint docs install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# The editable-install notice of setuptools is noise for a fresh checkout.
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/paystream demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

docs: $(STAMP)
	$(BIN)/paystream topics doc --write README.md

clean:
	rm -rf $(VENV) build *.egg-info
