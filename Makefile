# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, and run the demo-scale DAG (real MNIST + CIFAR-10, tiny scale)
#   make test   create .venv, install, and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# On machines without internet, point at a local dataset mirror; ../shared/data is used when present.
export MULTIARG_DATA_MIRROR ?= $(abspath $(wildcard ../shared/data))
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo test dryrun

$(BIN)/snakemake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/snakemake

demo: setup
	$(BIN)/snakemake --cores $(CORES) all --configfile workflow/configs/demo.yaml

test: setup
	$(BIN)/python -m pytest -q

dryrun: setup
	$(BIN)/snakemake -n --cores 8 all
