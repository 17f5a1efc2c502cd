# SoundFlow-mini: `make reproduce` runs the whole default pipeline, `make test` runs the test suite,
# `make gate` checks the pipeline's metrics against the quality floors.
# Both install what is missing first (Debian packages, the pinned venv .venv): scripts/setup.sh.
SHELL := /bin/bash
VENV := .venv/bin
export DS_ACCELERATOR := cpu
export HF_HUB_OFFLINE := 1
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup reproduce smoke test gate clean

setup:
	bash scripts/setup.sh

reproduce: setup
	$(VENV)/snakemake --cores all

smoke: setup
	$(VENV)/snakemake --cores all --config profile=smoke

test: setup
	$(VENV)/python -m pytest -q

gate: setup  # the quality floors (workflow/floors.yaml) against reports/metrics/ of the last run
	$(VENV)/python -m pytest -q -o addopts="" tests/gate


clean:
	rm -rf data logs .snakemake mlflow.db mlruns
