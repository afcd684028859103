# Two commands do all of the set-up: `make repro` runs the pipeline, `make test` runs the tests.
# Both build .venv from requirements.lock when it is missing or older than the lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test bench lock

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --no-deps --no-input -r requirements.lock
	$(BIN)/pip install --no-deps --no-input --no-build-isolation -e .
	$(BIN)/pip check
	touch $(STAMP)

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	python -m pytest

bench: $(STAMP)
	python benchmarks/train_throughput.py
	python benchmarks/attack_throughput.py

# Re-resolve the pins from pyproject.toml (needs the package registry).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --no-input -e '.[test]'
	{ echo "# Exact pins of every package in .venv (make install). Regenerate with: make lock"; \
	  .venv-lock/bin/pip freeze --all --exclude-editable | grep -v '^pip==' | sort -f; } > requirements.lock
	rm -rf .venv-lock
