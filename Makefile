# One entry point for every routine task. `make test` works on a fresh machine:
# it creates .venv, installs the pinned dependencies and runs lint, types and tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TRAIN_CSV ?= data/exercise_06_train.csv
BUNDLE ?= models/current

.PHONY: setup lint typecheck test unit train evaluate predict clean validate-deploy

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed ## create the virtual environment with every pinned dependency

lint: setup ## ruff (style, docstrings, bugs) and bandit (security)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m bandit -q -c pyproject.toml -r modeling inference gateway

typecheck: setup ## mypy over the packages
	$(PY) -m mypy

test: lint typecheck ## everything CI runs: lint, types, tests with coverage
	$(PY) -m pytest --cov --cov-report=term-missing

unit: setup ## fast unit tests only
	$(PY) -m pytest tests/unit -q

train: setup ## train the stacked ensemble: make train TRAIN_CSV=path BUNDLE=models/name
	$(PY) -m modeling train --train $(TRAIN_CSV) --out $(BUNDLE)

evaluate: setup ## cross-validated report into docs/model_report.md
	$(PY) -m modeling evaluate --train $(TRAIN_CSV)

validate-deploy: setup ## Dockerfiles, compose and k8s manifests, statically (no Docker needed)
	$(PY) -m pytest -q tests/unit/test_deploy_dockerfiles.py tests/unit/test_deploy_compose.py tests/unit/test_deploy_k8s.py

clean: ## remove caches and build output (keeps .venv and models/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov build dist *.egg-info
