# The front door: every documented command is a target here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
ENVS := local dev staging prod
ENV ?= dev
# `make demo PORT=N`, `make local-up PORT=N`: the local cloud on that port. Only from the command line: a PORT
# exported for some other program must not move the local cloud.
PORT_ARG = $(if $(filter command line,$(origin PORT)), --port $(PORT))
# Node 20 is past its end of life for jsii; the banner is noise, not news, on every synth.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# `cdk.json` runs `python3 app.py`: make that the project's interpreter.
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
# Offline by default: no update notices, no CLI telemetry.
export CDK_DISABLE_CLI_TELEMETRY := true
CDK := node_modules/.bin/cdk --no-notices

# Every Python package `make install` puts in .venv, transitive ones included, pinned with their hashes.
# It is generated from pyproject.toml (the CLI's dependencies, its extras and the dev groups) by `make lock`,
# for CPython 3.11 on Linux x86_64 (this machine, CI, GitHub's ubuntu-24.04); the hashes cover every file
# of each pinned release, so pip may pick whichever wheel fits the machine.
LOCK := requirements-dev.lock
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml --extra cdk --extra lambda --group dev --group install \
	--python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes --quiet
# What the Lambda functions import besides the standard library, pinned with hashes for the deployed runtime
# (python3.14 on arm64) from pyproject.toml's `lambda` extra alone: stacks/lambda_deps.py sorts each pin into
# what Lambda's runtime provides, what the Powertools layer provides, and what the asset bundles.
LAMBDA_LOCK := requirements-lambda.lock
LAMBDA_EXTRA = $(BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["lambda"]))'
LAMBDA_LOCK_COMPILE = $(LAMBDA_EXTRA) | $(BIN)/uv pip compile - --python-version 3.14 \
	--python-platform aarch64-manylinux_2_28 --generate-hashes --quiet
# Their wheels, for arm64/cp314 (the assets) and for this machine (the local cloud), downloaded by `make
# install` (network) into the user's wheel cache (stacks/lambda_deps.py: ~/.cache/resilient-pipeline/
# lambda-wheels, shared by every checkout) so that synth reads only that cache (offline). This stamp says
# this checkout's lock was fetched.
LAMBDA_WHEELS_STAMP := $(VENV)/lambda-wheels.downloaded
# `make wheelhouse` downloads every locked wheel here once; while it has wheels, installs read only from
# it (no index, no network). Delete it to install from the package index again.
WHEELHOUSE := wheelhouse
PIP_SOURCE := $(if $(wildcard $(WHEELHOUSE)/*.whl),--no-index --find-links $(WHEELHOUSE))
PIP_INSTALL = $(BIN)/python -m pip install --quiet --disable-pip-version-check $(PIP_SOURCE)

.PHONY: help install lock lock-upgrade lock-check wheelhouse demo demo-recursion test test-unit test-handlers test-infra test-localcloud test-integration lint format synth deploy diff local-up local-down local-reset chaos bench snapshot-update clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# .venv holds exactly one lock: another lock (a dependency dropped, say) rebuilds it from scratch, so nothing
# stale stays behind. Every package is a wheel whose hash is in the lock, pip and setuptools included; the
# project itself is then installed editable with no dependencies and no build isolation (setuptools is the
# locked one), so nothing is fetched that the lock does not name.
$(BIN)/.installed: $(LOCK) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	cmp -s $(LOCK) $(VENV)/installed.lock || rm -rf $(VENV)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -f $(VENV)/installed.lock || $(PIP_INSTALL) --require-hashes --only-binary :all: -r $(LOCK)
	cp $(LOCK) $(VENV)/installed.lock
	$(PIP_INSTALL) --no-deps --no-build-isolation -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(LAMBDA_WHEELS_STAMP): $(LAMBDA_LOCK) $(BIN)/.installed
	$(BIN)/python -m stacks.lambda_deps download
	touch $@

install: $(BIN)/.installed node_modules/.installed $(LAMBDA_WHEELS_STAMP) ## Create .venv from requirements-dev.lock, install the pinned CDK CLI, fetch the Lambda functions' wheels

lock: $(BIN)/.installed ## Re-resolve requirements-dev.lock and requirements-lambda.lock after editing pyproject.toml (other pins kept)
	$(LOCK_COMPILE) -o $(LOCK)
	$(LAMBDA_LOCK_COMPILE) -o $(LAMBDA_LOCK)

lock-upgrade: $(BIN)/.installed ## Move every dependency not pinned in pyproject.toml to its newest release
	$(LOCK_COMPILE) --upgrade -o $(LOCK)
	$(LAMBDA_LOCK_COMPILE) --upgrade -o $(LAMBDA_LOCK)

lock-check: $(BIN)/.installed ## Fail if requirements-dev.lock or requirements-lambda.lock is not what pyproject.toml resolves to (asks PyPI)
	cp -p $(LOCK) $(VENV)/lock-check.before
	cp -p $(LAMBDA_LOCK) $(VENV)/lambda-lock-check.before
	$(LOCK_COMPILE) -o $(LOCK)
	$(LAMBDA_LOCK_COMPILE) -o $(LAMBDA_LOCK)
	@# Unchanged: keep its timestamp too, so that the next target does not re-run the install.
	@status=0; \
	if cmp -s $(VENV)/lock-check.before $(LOCK); then touch -r $(VENV)/lock-check.before $(LOCK); else \
		diff -u $(VENV)/lock-check.before $(LOCK) | head -60; \
		echo "error: $(LOCK) did not match pyproject.toml; it is regenerated now: review it and commit it"; \
		status=1; fi; \
	if cmp -s $(VENV)/lambda-lock-check.before $(LAMBDA_LOCK); then \
		touch -r $(VENV)/lambda-lock-check.before $(LAMBDA_LOCK); else \
		diff -u $(VENV)/lambda-lock-check.before $(LAMBDA_LOCK) | head -60; \
		echo "error: $(LAMBDA_LOCK) did not match the lambda extra; it is regenerated now: review it and commit it"; \
		status=1; fi; \
	exit $$status

wheelhouse: ## Download every locked wheel into wheelhouse/ (again after the lock changes); installs then need no network
	$(PYTHON) -m pip download --quiet --disable-pip-version-check --require-hashes --only-binary :all: \
		--dest $(WHEELHOUSE) -r $(LOCK)

demo: install ## Start the local cloud (PORT=N: on that port), deploy env=local with the CDK CLI, run five real jobs and check them, then serve the console on 127.0.0.1:8765 until Ctrl-C
	$(BIN)/pipeline demo$(PORT_ARG) --console --allow-actions

demo-recursion: install ## The same long job through the pipeline and through a queue that feeds itself (examples/self-recursion): the loop is stopped at 16 hops and pages, the pipeline finishes
	$(BIN)/python examples/self-recursion/demo.py$(PORT_ARG)

# `make test` spreads the tests over TEST_WORKERS processes (pytest-xdist; tests/conftest.py keeps what shares
# a fixture in one worker and hands the slow tiers' groups out first, in its own order: hence
# --no-loadscope-reorder). Three on this machine's two cores: the suite waits on subprocesses (local clouds,
# the CDK CLI, Lambda environments) a third of the time, so two workers kept the CPU 150% busy and a third
# fills it (measured in one sitting: 2 workers 392-414 s, 3 workers 364 s). TEST_WORKERS=0 runs it in one
# process.
TEST_WORKERS ?= 3

test: install ## Run every test tier (unit, handlers, CLI, console, diff, infrastructure, local cloud, integration) in TEST_WORKERS processes, then print each tier's time
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test-unit: install ## The domain's unit tests (pure: fakes, no AWS emulator; seconds)
	$(BIN)/python -m pytest tests/unit

test-handlers: install ## The Lambda handlers on in-process moto (real adapters, real boto3 calls)
	$(BIN)/python -m pytest tests/handlers

test-infra: install ## CDK assertion, snapshot, cfn-lint and config tests
	$(BIN)/python -m pytest tests/infra

test-localcloud: install ## The local cloud's own glue (runner, poller, alarms, Step Functions fixes)
	$(BIN)/python -m pytest tests/localcloud

test-integration: install ## End-to-end scenarios on a local cloud deployed with the real CDK CLI
	$(BIN)/python -m pytest tests/integration

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy stacks app.py lambda_src localcloud pipeline_cli infra_diff faultmatrix

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

local-up: install ## Start (or reuse) the local cloud (PORT=N: on that port) and deploy env=local; it keeps running in the background
	$(BIN)/pipeline local up$(PORT_ARG)

local-down: install ## Stop the local cloud (its state is kept for the next local-up)
	$(BIN)/pipeline local down

local-reset: install ## Stop the local cloud and delete its saved state: the next local-up starts empty
	$(BIN)/pipeline local reset

chaos: install ## Fault matrix: cells F1-F11 x 5 seeds on a fresh local cloud, checked for lost/duplicated/missing/stuck (CHAOS_ARGS="--cells F6 --seeds 1")
	$(BIN)/python -m faultmatrix $(CHAOS_ARGS)

# `make bench BENCH="burst coldstart"`: only those parts, in that order.
BENCH ?= worker codec compressed shards burst coldstart
bench: install ## Benchmarks (BENCH="burst coldstart" runs some): the worker chunk loop (peak RSS, records/s vs a naive baseline), its codec (vs msgspec's floor and today's loop), compressed inputs (peak RSS, MiB/s compressed and decompressed, resume costs), then shards on the local cloud (wall time with 1, 2, 4, 8 shards under 300 ms S3 latency), the local cloud's job rate (300 jobs of 1,000 lines through the ingest queue: jobs/s and the server's CPU s per job), and the handlers' cold starts (import plus first invocation, tracing off and on, against bare boto3's import)
	@# Every part runs, a failing one too (a slow hour's job rate must not hide the cold starts): the
	@# command fails at the end, naming the parts that did.
	@failed=""; for part in $(BENCH); do \
		echo "$(BIN)/python benchmarks/bench_$$part.py"; \
		$(BIN)/python benchmarks/bench_$$part.py || failed="$$failed $$part"; \
	done; \
	if [ -n "$$failed" ]; then echo "make bench: FAIL in$$failed (of: $(BENCH))"; exit 1; fi; \
	echo "make bench: every part PASS ($(BENCH))"

snapshot-update: install ## Re-record the template snapshots after an intended infrastructure change
	$(BIN)/python -m pytest tests/infra --snapshot-update

clean: ## Remove build output (keeps .venv, node_modules and the Lambda wheel cache)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis
