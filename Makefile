# Two commands do all of the set-up: `make repro` runs the pipeline, `make test` runs the tests.
# Both build .venv from requirements.lock when it is missing or older than the lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-from-lock
# torchattacks (AutoAttack in the robustness stage) pins requests~=2.25.1 for a download helper this
# project never calls (upstream: Harry24k/adversarial-attacks-pytorch#205); every pin installs without
# dependencies, so it is locked like the rest and `pip check` lets exactly that one line pass.
NO_DEPS_PINS := torchattacks==3.5.1
KNOWN_CONFLICT := ^torchattacks 3.5.1 has requirement requests~=2.25.1
# `dvc plots show/diff` render offline through this template (.dvc/config), made from the pinned
# vl-convert-python's bundle of Vega, Vega-Lite and Vega-Embed (git-ignored, rebuilt here)
PLOTS_TEMPLATE := .dvc/plots/offline.html
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test bench lock mnist

install: $(STAMP) $(PLOTS_TEMPLATE)

$(STAMP): requirements.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --no-deps --no-input -r requirements.lock
	$(BIN)/pip install --no-deps --no-input --no-build-isolation -e .
	@broken=$$($(BIN)/pip check | grep -v -e '^No broken requirements' -e '$(KNOWN_CONFLICT)'); \
	test -z "$$broken" || { echo "$$broken"; exit 1; }
	touch $(STAMP)

$(PLOTS_TEMPLATE): $(STAMP) stages/dvc_plots_template.py stages/lib/html_page.py
	python -m stages.dvc_plots_template $(PLOTS_TEMPLATE)

repro: install
	dvc repro

test: install
	python -m pytest

# Install the four MNIST files you already have (plain or .gz, checked against the official
# checksums) where `dvc repro` finds them without a network: make mnist FROM=/path/to/folder
mnist: install
	@test -n "$(FROM)" || { echo "usage: make mnist FROM=<folder with the four MNIST IDX files>" >&2; exit 2; }
	python -m stages.fetch_mnist --import "$(FROM)"

bench: install
	python benchmarks/train_throughput.py
	python benchmarks/attack_throughput.py

# Re-resolve the pins from pyproject.toml (needs the package registry).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --no-input -e '.[test]'
	.venv-lock/bin/pip install --no-input --no-deps $(NO_DEPS_PINS)
	{ echo "# Exact pins of every package in .venv (make install). Regenerate with: make lock"; \
	  .venv-lock/bin/pip freeze --all --exclude-editable | grep -v '^pip==' | sort -f; } > requirements.lock
	rm -rf .venv-lock
