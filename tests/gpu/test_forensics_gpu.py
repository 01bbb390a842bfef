"""Forensics on a CUDA GPU (skipped without one): concurrent-stream overlap from the profiler trace,
extraction under torch.compile, and bit-identical repetitions, on the tiny synthetic model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.forensics,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path, rows: str) -> Path:
    (tmp_path / "manifests").mkdir(parents=True)
    for f in ("hardware.yaml", "images.yaml"):
        shutil.copy(ROOT / "manifests" / f, tmp_path / "manifests" / f)
    head = (
        "paper: fgpu\ntitle: t\nsource: test\ndefaults:\n  experiment: forensics\n  reps: 3\n"
        '  target: {hardware: local-gpu}\n  params: {model: "synthetic:tiny-qwen3-moe", dtype: bfloat16,'
        " prompt_tokens: 512, decode_steps: 12}\nrows:\n"
    )
    (tmp_path / "manifests" / "fgpu.yaml").write_text(head + rows)
    return tmp_path


def _run(tmp_path, monkeypatch, rows, row):
    from pack.cli import main

    monkeypatch.setenv("PACK_HOME", str(_project(tmp_path / "p", rows)))
    try:
        main(["run", row, "--out", str(tmp_path / "runs")])
    except SystemExit as e:
        assert not e.code
    d = next((tmp_path / "runs" / "fgpu" / row).iterdir())
    return d, json.loads((d / "run.json").read_text())


def test_concurrent_stream_overlap_is_proven_from_the_trace(tmp_path, monkeypatch):
    d, rec = _run(
        tmp_path,
        monkeypatch,
        "  - {id: s, cell: c, params: {experiment_type: concurrent_streams, "
        "values: [true], streams: {matmul_size: 4096, duty_cycle: 0.5}}}\n",
        "s",
    )
    assert rec["status"] == "complete", rec["errors"]
    m = {k: v["values"][0] for k, v in rec["metrics"].items()}
    assert m["streams.reps_bit_identical"] == 1 and m["baseline.reps_bit_identical"] == 1
    assert m["streams.overlap_fraction"] > 0.05, m
    assert 0.1 < m["streams.workload_utilisation"] <= 1.0
    assert (d / "reps" / "rep-000" / "streams.trace.json.gz").is_file()


def test_extraction_works_under_torch_compile(tmp_path, monkeypatch):
    d, rec = _run(
        tmp_path,
        monkeypatch,
        "  - {id: c, cell: c, params: {experiment_type: compile, values: [true]}}\n",
        "c",
    )
    assert rec["status"] == "complete" and "compile" not in rec["errors"], rec["errors"]
    m = {k: v["values"][0] for k, v in rec["metrics"].items()}
    assert m["compile.reps_bit_identical"] == 1 and m["compile.l2_hidden_last"] >= 0
    # compiled once in the warm-up, then no graph compiled in a timed repetition (no eager fallback:
    # hitting dynamo's recompile limit would have failed the configuration)
    for rep in sorted((d / "reps").iterdir()):
        facts = json.loads((rep / "rep.json").read_text())["result"]["info"]["configs"]["compile"]["facts"]
        assert facts["compile_graphs"] >= 1 and "recompiled_graphs" not in facts, (rep.name, facts)
