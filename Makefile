# Two commands on a fresh machine: `make serve` and `make test`.
#   make serve               the base install (default engines, no torch), then the server
#   make serve EXTRAS=sam    with the SAM family (torch); fetch weights: .venv/bin/scribble-seg download vit_b
#   make test                everything the tests use (.[test] = sam + tools + test tools)
VENV ?= .venv
PYTHON ?= python3
EXTRAS ?=
BIN := $(VENV)/bin
comma := ,
SERVE_STAMP := $(VENV)/.installed-serve$(if $(EXTRAS),-$(subst $(comma),-,$(EXTRAS)))

.PHONY: install serve test bench

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(SERVE_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.$(if $(EXTRAS),[$(EXTRAS)])'
	touch $@

serve: $(SERVE_STAMP)
	$(BIN)/scribble-seg serve

test: install
	bash scripts/install-system-packages.sh
	bash scripts/install-label-studio.sh
	$(BIN)/python -m pytest
