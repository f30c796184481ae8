# AstroCloud — the two commands a newcomer needs:
#   make demo   install, initialise the embedded default (SQLite + local storage in ./var),
#               load the demo data and serve the portal at http://127.0.0.1:8000
#   make test   install what the tests need and run the whole suite (SQLite, then PostgreSQL
#               when ASTROCLOUD_TEST_DATABASE_URL is set)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?= -n 2
export ASTROCLOUD_HOME ?= $(CURDIR)/var

.PHONY: demo test install install-test system-deps serve lint i18n clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

demo: install
	$(BIN)/astrocloud db upgrade
	$(BIN)/astrocloud demo
	@echo "Serving AstroCloud at http://$(HOST):$(PORT)/ — sign in as demo / astrocloud-demo (or admin / astrocloud-demo)"
	$(BIN)/astrocloud serve --host $(HOST) --port $(PORT)

serve: install
	$(BIN)/astrocloud serve --host $(HOST) --port $(PORT)

system-deps:
	@bash scripts/system-deps.sh

install-test: $(BIN)/python system-deps
	$(BIN)/pip install --quiet -e '.[test]'

test: install-test
	env -u ASTROCLOUD_TEST_DATABASE_URL $(BIN)/python -m pytest $(PYTEST_ARGS)
	@if [ -n "$$ASTROCLOUD_TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL ($$ASTROCLOUD_TEST_DATABASE_URL)"; \
		$(BIN)/python -m pytest $(PYTEST_ARGS); \
	fi

lint: install-test
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports

i18n: install-test
	bash scripts/i18n.sh

clean:
	rm -rf $(VENV) build dist *.egg-info test-artifacts
