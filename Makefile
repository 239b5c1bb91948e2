# The two set-up commands of the README. Each creates or updates .venv on its own.
# `make test` installs the dev, airflow and spark extras into the same .venv: Airflow 3 resolves
# together with the project's pins (checked with pip), so it needs no environment of its own.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP_BASE := $(VENV)/.stamp-base
STAMP_DEV  := $(VENV)/.stamp-dev

.PHONY: report test pipeline render lint clean help

help:
	@echo "make report   pipeline on the embedded default data, then the book (HTML, PDF) and the deck"
	@echo "make test     ruff and pytest (what CI runs)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when the project's metadata changed (idempotent).
$(STAMP_BASE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,airflow,spark]'
	@touch $@ $(STAMP_BASE)

test: $(STAMP_DEV)
	$(BIN)/ruff check src tests benchmarks dags
	$(BIN)/python -m pytest

pipeline: $(STAMP_BASE)
	$(BIN)/microsub run

render: pipeline
	@scripts/render.sh "$(BIN)"

report: render

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests benchmarks dags
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf _book .quarto _freeze _preview data/cache
