# smartimaging: the two commands of the README.
#   make demo   create .venv, install, generate the synthetic cohort and run the whole pipeline
#   make test   create .venv, install with test dependencies, lint, type-check, run every test, and run
#               the demo once more in .venv-demo (run-time dependencies only: the releases a user gets)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
JOBS   ?= 2
DEMO_OUT ?= demo_output
DEMO_VENV ?= .venv-demo

.PHONY: install install-test demo demo-check test lint typecheck pytest benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/smartimaging demo $(DEMO_OUT) --jobs $(JOBS)
	@echo "open $(DEMO_OUT)/results/report.html"

lint: install-test
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: install-test
	$(BIN)/mypy

# the PACS tests need a real Orthanc (Debian packages orthanc, orthanc-dicomweb) and the report tests a real
# Chromium (Debian package chromium): installed when missing, and required (never skipped) through this target
pytest: install-test
	bash scripts/ensure_orthanc.sh
	bash scripts/ensure_chromium.sh
	SMARTIMAGING_REQUIRE_ORTHANC=1 SMARTIMAGING_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -n $(JOBS) --durations=15

# `make demo` as a user runs it, in a venv of its own: the test extras pin older releases (lifelines needs
# pandas < 3), so without this the demo's pandas 3 would go untested
demo-check:
	$(MAKE) demo VENV=$(DEMO_VENV) DEMO_OUT=$(DEMO_VENV)/demo_output
	$(DEMO_VENV)/bin/python scripts/check_demo.py $(DEMO_VENV)/demo_output

test: lint typecheck pytest demo-check

clean:
	rm -rf $(VENV) $(DEMO_VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
