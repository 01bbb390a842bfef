# ECMoE (seed 004) and the seed 002/003 command rows. Included by the main Makefile.
.PHONY: ecmoe-smoke ecmoe-test ecmoe-bench ecmoe-gpu

# Every ECMoE row plus the seed 002/003 rows at smoke scale on the CPU, then the verdicts.
ecmoe-smoke: setup
	$(BIN)/pack run ecmoe latent-bridge local-ablation --scale smoke
	$(BIN)/pack verify ecmoe latent-bridge local-ablation --brief

# The ECMoE tests (pytest marker `ecmoe`; the GPU ones skip without CUDA).
ecmoe-test: setup
	$(BIN)/python -m pytest -q -m ecmoe

# Hook overhead beyond the quantize arithmetic (target <= 5% of a perplexity pass).
ecmoe-bench: setup
	PYTHONPATH=. $(BIN)/python bench/ecmoe_hook_overhead.py

# The GPU script; OUT defaults to reports/ecmoe-gpu. On a CPU add GPU_FLAGS=--cpu.
ecmoe-gpu:
	OUT=$${OUT:-reports/ecmoe-gpu} bash bench/gpu/ecmoe.sh $(GPU_FLAGS)
