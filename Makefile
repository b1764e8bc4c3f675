# Two commands for a newcomer: `make local` serves the whole system, `make test` passes the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAYER_STAMP := build/layers/.built
# jsii warns at length on every synth under Node 20; the CDK still supports it.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: help venv layer synth local test test-unit test-integration test-infra test-e2e lint format typecheck bench clean node-check

help:
	@echo "make local   - build, synthesize and serve the whole system on 127.0.0.1 (embedded PostgreSQL + moto)"
	@echo "make test    - lint, type-check and run every test suite"
	@echo "make layer   - build the Lambda dependency layer for the Lambda platform"
	@echo "make synth   - synthesize the CDK app (cdk-nag packs run on every synth)"

node-check:
	@command -v node >/dev/null 2>&1 || { echo "Node.js (18 or later) is required: the CDK synthesizes through it. Install it (apt-get install nodejs) and retry." >&2; exit 1; }

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(LAYER_STAMP): $(STAMP) layers/requirements.txt layers/build.py $(shell find shared/compliance -name "*.py") $(wildcard migrations/*.sql) migrations/catalog.toml
	$(BIN)/python layers/build.py

layer: $(LAYER_STAMP)

synth: node-check layer
	$(BIN)/python -m compliance_tools.cli synth

local: node-check layer
	$(BIN)/compliance local up

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv
	$(BIN)/mypy shared functions infra

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-integration: venv
	$(BIN)/pytest -q tests/integration

test-infra: node-check layer
	$(BIN)/pytest -q tests/infra

test-e2e: node-check layer
	$(BIN)/pytest -q tests/e2e

test: node-check layer lint typecheck
	$(BIN)/pytest -q tests

bench: venv
	$(BIN)/compliance bench ingest --json

clean:
	rm -rf build cdk.out .pytest_cache .mypy_cache .ruff_cache
