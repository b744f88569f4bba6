# One task runner for people and CI alike. `make demo` and `make test` install
# and start whatever they need; everything they build lives in ignored folders.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEPLOY_TOOLS := .local/schemas/.complete
NODE_DIR := .local/node
NODE_STAMP := $(NODE_DIR)/.installed-stamp

.PHONY: help install deploy-tools node-tools services up down status demo bench docs test test-unit test-integration test-deploy lint format clean

help:
	@echo "make demo     replay the real IRC logs through the pipeline and report"
	@echo "make test     run the unit and integration tests against real services"
	@echo "make bench    batched against naive workers; BENCH_SCALE=0.1 for a quick run"
	@echo "make up/down  start/stop the local Kafka broker and FerretDB store"
	@echo "make lint     ruff, ruff format --check, mypy --strict"
	@echo "make test-deploy  check the Dockerfile, compose file and Kubernetes manifests"
	@echo "make docs     regenerate docs/asyncapi.yaml from the code"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

# kustomize and the compose and KEDA schemas that tests/deploy checks against.
$(DEPLOY_TOOLS): deploy/tools.sh
	@deploy/tools.sh

deploy-tools: $(DEPLOY_TOOLS)

# The AsyncAPI initiative's own parser, which checks docs/asyncapi.yaml.
$(NODE_STAMP): docs/tools/package.json docs/tools/package-lock.json
	@mkdir -p $(NODE_DIR)
	cp docs/tools/package.json docs/tools/package-lock.json $(NODE_DIR)/
	cd $(NODE_DIR) && npm ci --ignore-scripts --no-audit --no-fund --silent
	@touch $@

node-tools: $(NODE_STAMP)

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

services:
	@deploy/local/build.sh kafka
	@deploy/local/build.sh ferretdb

up: install services
	$(BIN)/courier up

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m deploy.local.services down; \
	else echo "nothing to stop: the services need .venv, which is not there yet"; fi

status: install
	$(BIN)/courier status

demo: up
	$(BIN)/courier demo

docs: install node-tools
	$(BIN)/faststream docs gen --factory workers.docs:docs_app --yaml --out docs/asyncapi.yaml
	node docs/tools/validate.cjs docs/asyncapi.yaml

bench: up $(BENCH_STAMP)
	@$(BIN)/python -m bench

test: up node-tools deploy-tools
	$(BIN)/pytest

test-unit: install node-tools
	$(BIN)/pytest tests/unit

test-integration: up
	$(BIN)/pytest tests/integration

test-deploy: install deploy-tools
	$(BIN)/pytest tests/deploy

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict contracts storage workers deploy tests bench

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: down
	rm -rf .local $(VENV)
