"""A process that has not loaded torch writes its synthetic GGUF in a child and stays torch-free
(a CUDA llama.cpp build segfaults at model load once torch's CUDA libraries are in the process)."""

import subprocess
import sys

import pytest

pytest.importorskip("gguf", reason="the gguf package writes GGUF files (pip install 'pack-repro[llamacpp]')")
pytest.importorskip("torch", reason="building the random model needs torch")


def test_synthetic_gguf_is_written_without_loading_torch_here(tmp_path):
    code = (
        "import sys; from pathlib import Path; from pack.models.gguf import synthetic_gguf, check_gguf\n"
        f"p = synthetic_gguf('tiny-llama', cache=Path({str(tmp_path)!r}))\n"
        "print(p.is_file(), check_gguf(p).get('general.architecture'), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-800:]
    assert out.stdout.split() == ["True", "llama", "False"]
