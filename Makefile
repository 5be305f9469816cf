# The README's two commands: `make test` and `make demo`. Everything sets itself up.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Scale for `make bench` (1.0 = the sizes the issues ask for; try 0.05 for a quick look).
SCALE ?= 1.0

.PHONY: venv test demo bench lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: venv
	$(PY) -m loader.devdb run -- bash scripts/demo.sh

bench: venv
	$(PY) -m bench --scale $(SCALE)

lint: venv
	$(VENV)/bin/ruff check loader tests bench
	$(VENV)/bin/sqlfluff lint sql

format: venv
	$(VENV)/bin/ruff check --fix loader tests bench
	$(VENV)/bin/sqlfluff fix sql

clean:
	rm -rf $(VENV) .pytest_cache
