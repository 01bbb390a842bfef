# Forensics (seed 001) targets. `make forensics-smoke` is what CI runs; the GPU script needs OUT.
.PHONY: forensics-smoke forensics-test forensics-bench forensics-gpu

forensics-smoke: setup
	$(BIN)/pack run exp0 exp1 exp4 --scale smoke
	$(BIN)/pack verify forensics --brief
	$(BIN)/pack analyze forensics runs/forensics --out reports/forensics

forensics-test: setup
	$(BIN)/python -m pytest -q -m forensics

forensics-bench: setup
	PYTHONPATH=. $(BIN)/python bench/forensics_overhead.py
	PYTHONPATH=. $(BIN)/python bench/forensics_storage.py
	PYTHONPATH=. $(BIN)/python bench/forensics_storage.py --shape qwen3-30b-a3b

forensics-gpu:
	@test -n "$(OUT)" || (echo "set OUT=<dir>"; exit 2)
	OUT=$(OUT) PYTHON=$(PY) bash bench/gpu/forensics.sh
