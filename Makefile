# smartimaging: the two commands of the README.
#   make demo   create .venv, install, generate the synthetic cohort and run the whole pipeline
#   make test   create .venv, install with test dependencies, lint, type-check, run every test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
JOBS   ?= 2
DEMO_OUT ?= demo_output

.PHONY: install install-test demo test lint typecheck pytest benchmark clean

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
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install-test
	$(BIN)/mypy

# the PACS tests need a real Orthanc (Debian packages orthanc, orthanc-dicomweb) and the report tests a real
# Chromium (Debian package chromium): installed when missing, and required (never skipped) through this target
pytest: install-test
	bash scripts/ensure_orthanc.sh
	bash scripts/ensure_chromium.sh
	SMARTIMAGING_REQUIRE_ORTHANC=1 SMARTIMAGING_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -n $(JOBS) --durations=15

test: lint typecheck pytest

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
