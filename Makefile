# ClinicDesk: `make run` serves the portal on SQLite, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
FLASK  := $(BIN)/flask --app run

.PHONY: run test test-sqlite install install-dev translations init clean

$(VENV)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

## Compile the translation catalogues (the .mo files are build output, not committed).
translations: install
	$(BIN)/pybabel compile -d translations --statistics

init: install translations
	$(FLASK) clinic init

## Serve the portal at http://127.0.0.1:$(PORT) on SQLite in instance/, with demo data on first run.
run: init
	$(FLASK) clinic seed-demo --if-empty > /dev/null
	@$(FLASK) clinic demo-logins
	@echo "ClinicDesk: http://127.0.0.1:$(PORT)"
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

## The whole suite (PostgreSQL when DATABASE_URL names one, else SQLite).
test: install-dev translations
	$(BIN)/pytest

## The SQLite pass: migrations, services and a smoke of every screen.
test-sqlite: install-dev translations
	DATABASE_URL= $(BIN)/pytest -m sqlite_subset

clean:
	rm -rf $(VENV) .pytest_cache tests/browser/artifacts
