# Set-up and entry points. Every target builds the virtual environment in .venv first, and
# reuses it while pyproject.toml and the constraints are unchanged.
#   make train ARGS="encoder=lstm"     train and evaluate (Hydra overrides in ARGS)
#   make test                          run the test suite
# Elsewhere, pick your torch build: make TORCH="torch --index-url https://download.pytorch.org/whl/cu128"

PYTHON ?= python3
VENV := .venv
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY = true

.PHONY: train test lint

$(STAMP): pyproject.toml .ci/constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch first: a bare `torch` requirement would otherwise pull a multi-GB CUDA build.
	$(VENV)/bin/pip install --quiet $(TORCH)
	$(VENV)/bin/pip install --quiet -c .ci/constraints.txt -e ".[dev]"
	# The wheel ships MovieLens-100K; only its data files are read, so none of its deps.
	$(VENV)/bin/pip install --quiet --no-deps recbole==1.2.1
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/rnnrec-train $(ARGS)

test: $(STAMP)
	$(VENV)/bin/pytest $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy rnnrec hydra_plugins
