# Two commands on a fresh machine: `make serve` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install serve test bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

serve: install
	$(BIN)/scribble-seg serve

test: install
	bash scripts/install-system-packages.sh
	bash scripts/install-label-studio.sh
	$(BIN)/python -m pytest
