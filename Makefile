# One entry point for every routine task. `make test` works on a fresh machine:
# it creates .venv, installs the pinned dependencies and runs lint, types and tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TRAIN_CSV ?= data/exercise_06_train.csv
TEST_CSV ?= data/exercise_06_test.csv
BUNDLE ?= models/current
# Containers: the engine that answers here (deploy/docker/engine.sh: docker, else podman),
# and the base image to build from (empty: the Dockerfiles' default, the official image).
ENGINE ?= $(shell deploy/docker/engine.sh 2>/dev/null)
BASE_IMAGE ?=
BUILD_FLAGS ?= # e.g. --no-cache, to time a cold build
IMAGE_VERSION := 1.0.0
BUILD = nice -n 10 $(ENGINE) build $(if $(filter podman,$(ENGINE)),--format docker) \
	$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) $(BUILD_FLAGS)

.PHONY: help setup proto proto-check lint typecheck test unit train evaluate run bench docs \
	docs-check dist clean validate-deploy soak images compose-test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed ## create the virtual environment with every pinned dependency

proto: setup ## regenerate the gRPC stubs from proto/inference.proto
	$(PY) -m proto.generate

proto-check: setup ## fail when the committed stubs differ from the .proto
	$(PY) -m proto.generate --check

lint: setup proto-check ## ruff (style, docstrings, bugs), bandit (security), layers, stubs up to date
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m bandit -q -c pyproject.toml -r modeling inference gateway

typecheck: setup ## mypy over the packages
	$(PY) -m mypy

test: lint typecheck docs-check ## everything CI runs: lint, types, write-up, tests with coverage
	$(PY) -m pytest --cov --cov-report=term-missing

unit: setup ## fast unit tests only
	$(PY) -m pytest tests/unit -q

train: setup ## train the stacked ensemble: make train TRAIN_CSV=path BUNDLE=models/name
	$(PY) -m modeling train --train $(TRAIN_CSV) --out $(BUNDLE)

evaluate: setup ## cross-validated report into docs/model_report.md
	$(PY) -m modeling evaluate --train $(TRAIN_CSV)

validate-deploy: setup ## Dockerfiles, compose and k8s manifests, statically (no Docker needed)
	$(PY) -m pytest -q tests/unit/test_deploy_dockerfiles.py tests/unit/test_deploy_compose.py tests/unit/test_deploy_k8s.py

images: ## build the inference, trainer and gateway images: make images [BASE_IMAGE=...]
	@test -n "$(ENGINE)" || { echo "make images: no container engine answers (docker info, podman info)" >&2; exit 1; }
	$(BUILD) -f Dockerfile.inference --target runtime -t scoring-service/inference:$(IMAGE_VERSION) .
	$(BUILD) -f Dockerfile.inference --target trainer -t scoring-service/trainer:$(IMAGE_VERSION) .
	$(BUILD) -f Dockerfile.gateway --target runtime -t scoring-service/gateway:$(IMAGE_VERSION) .

# No dependency on setup (it needs the venv make test made): CI runs it after make test.
compose-test: ## images + the compose stack tested end to end (skipped, loudly, with no engine)
	@if [ -z "$(ENGINE)" ]; then \
		printf '\n%s\n%s\n\n' "######## compose-test SKIPPED: no container engine answers here (docker info, podman info)" \
			"######## the images and the compose stack were NOT tested" >&2; exit 0; fi
	$(MAKE) --no-print-directory images
	$(if $(BASE_IMAGE),BASE_IMAGE=$(BASE_IMAGE)) $(PY) -m pytest -m containers tests/containers

run: ## start the stack (Docker when an engine answers, else local processes)
	./run_api.sh

bench: setup ## benchmark a running stack; results into docs/performance.md
	$(PY) -m bench --url http://localhost:5001 --rows $(TEST_CSV) --bundle $(BUNDLE)

soak: setup ## 5-minute mixed load of a running stack; results into docs/soak.md
	$(PY) -m bench --url http://localhost:5001 --rows $(TEST_CSV) --soak 300

docs: setup ## build docs/writeup.pdf from docs/writeup.md and its figures
	$(PY) docs/build_pdf.py

docs-check: docs ## the PDF has every section of the write-up
	$(PY) docs/build_pdf.py --check

dist: docs ## one archive of code, containers, manifests, scripts and the PDF (no data, no models)
	mkdir -p dist
	git ls-files -z | tar --null -czf dist/scoring-service.tar.gz \
		--transform 's,^,scoring-service/,' -T -
	@echo "dist/scoring-service.tar.gz: tracked files only (never data or models)"

clean: ## remove caches and build output (keeps .venv and models/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov build dist *.egg-info
