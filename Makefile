# One set of commands for people and CI alike. Every target builds the virtual
# environment it needs from nothing, so a fresh clone needs only Python 3.11+.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo test lint bench system-packages web-assets clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP) web-assets ## Build a synthetic city on SQLite, import its feeds, colour it
	$(BIN)/healthcode demo

web-assets: $(STAMP) ## Browser libraries (npm) and compiled page catalogues
	PYTHON=$(BIN)/python bash scripts/web-assets.sh

system-packages: ## Install the Debian packages the project needs, where possible
	bash scripts/system-packages.sh

test: $(STAMP) system-packages web-assets ## Run the test suite (PostgreSQL suites too where reachable)
	$(BIN)/python scripts/test.py

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check src tests scripts

bench: $(STAMP) ## Full recolour benchmark, SQLite and PostgreSQL
	$(BIN)/healthcode bench recolor --residents 200000

clean: ## Remove the virtual environment and demo output
	rm -rf $(VENV) healthcode-demo
