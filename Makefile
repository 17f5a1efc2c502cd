# SoundFlow-mini: `make reproduce` runs the whole default pipeline, `make test` runs the test suite.
# Both install what is missing first (Debian packages, the pinned venv .venv): scripts/setup.sh.
SHELL := /bin/bash
VENV := .venv/bin
export DS_ACCELERATOR := cpu
export HF_HUB_OFFLINE := 1
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup reproduce smoke test clean

setup:
	bash scripts/setup.sh

reproduce: setup
	$(VENV)/snakemake --cores all

smoke: setup
	$(VENV)/snakemake --cores all --config profile=smoke

test: setup
	$(VENV)/python -m pytest -q


clean:
	rm -rf data logs .snakemake mlflow.db mlruns
