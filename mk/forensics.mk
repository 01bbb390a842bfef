# Forensics (seed 001) targets. `make forensics-smoke` is what CI runs; the GPU script needs OUT.
.PHONY: forensics-smoke forensics-test forensics-bench forensics-gpu

forensics-smoke: setup
	$(BIN)/pack run exp0 exp1 exp4 --scale smoke
	$(BIN)/pack verify forensics --brief
	$(BIN)/pack analyze forensics runs/forensics --out reports/forensics

forensics-test: setup
	$(BIN)/python -m pytest -q tests/unit/test_forensics_params.py tests/unit/test_forensics_signals.py \
		tests/integration/test_forensics_extraction.py tests/integration/test_forensics_run.py \
		tests/integration/test_forensics_distributed.py tests/gpu/test_forensics_gpu.py

forensics-bench: setup
	PYTHONPATH=. $(BIN)/python bench/forensics_overhead.py
	PYTHONPATH=. $(BIN)/python bench/forensics_storage.py
	PYTHONPATH=. $(BIN)/python bench/forensics_storage.py --shape qwen3-30b-a3b

forensics-gpu:
	@test -n "$(OUT)" || (echo "set OUT=<dir>"; exit 2)
	OUT=$(OUT) PYTHON=$(PY) bash bench/gpu/forensics.sh
