# The front door: every documented command is a target here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
ENVS := local dev staging prod
ENV ?= dev
# Node 20 is past its end of life for jsii; the banner is noise, not news, on every synth.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# `cdk.json` runs `python3 app.py`: make that the project's interpreter.
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
# Offline by default: no update notices, no CLI telemetry.
export CDK_DISABLE_CLI_TELEMETRY := true
CDK := node_modules/.bin/cdk --no-notices

.PHONY: help install demo test test-unit test-infra test-localcloud test-integration lint format synth deploy diff local-up local-down chaos bench snapshot-update clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11+ is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed node_modules/.installed ## Create .venv with pinned packages and install the pinned CDK CLI

demo: install ## Start the local cloud, deploy env=local with the CDK CLI, run five real jobs and check them
	$(BIN)/pipeline demo

test: install ## Run every test tier (unit, infrastructure, local cloud, integration)
	$(BIN)/python -m pytest

test-unit: install ## Lambda runtime unit tests only (fast)
	$(BIN)/python -m pytest tests/unit

test-infra: install ## CDK assertion, snapshot, cfn-lint and config tests
	$(BIN)/python -m pytest tests/infra

test-localcloud: install ## The local cloud's own glue (runner, poller, alarms, Step Functions fixes)
	$(BIN)/python -m pytest tests/localcloud

test-integration: install ## End-to-end scenarios on a local cloud deployed with the real CDK CLI
	$(BIN)/python -m pytest tests/integration

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy stacks app.py lambda_src localcloud pipeline_cli faultmatrix

format: install ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

synth: install ## Synthesize every environment into cdk.out/<env>/ (offline, no credentials)
	@for env in $(ENVS); do \
		echo "==> cdk synth -c env=$$env"; \
		$(CDK) synth --quiet -c env=$$env -o cdk.out/$$env || exit 1; \
	done

deploy: install ## Deploy one environment: make deploy ENV=dev (needs AWS credentials and a bootstrapped account)
	$(CDK) deploy --all -c env=$(ENV) -o cdk.out/$(ENV) $(CDK_ARGS)

diff: install ## Infra diff of every environment against the merge base with main (DIFF_ARGS="--base REF --env dev")
	$(BIN)/pipeline diff $(DIFF_ARGS)

local-up: install ## Start (or reuse) the local cloud and deploy env=local; it keeps running in the background
	$(BIN)/pipeline local up

local-down: install ## Stop the local cloud
	$(BIN)/pipeline local down

chaos: install ## Fault matrix: cells F1-F11 x 5 seeds on a fresh local cloud, checked for lost/duplicated/missing/stuck (CHAOS_ARGS="--cells F6 --seeds 1")
	$(BIN)/python -m faultmatrix $(CHAOS_ARGS)

bench: install ## Worker chunk-loop benchmark: peak RSS and records/s at 1e5 and 1e6 records vs a naive baseline
	$(BIN)/python benchmarks/bench_worker.py

snapshot-update: install ## Re-record the template snapshots after an intended infrastructure change
	$(BIN)/python -m pytest tests/infra --snapshot-update

clean: ## Remove build output (keeps .venv and node_modules)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis
