"""The ECMoE smoke rows end to end, as CI runs them: Task 2 (baseline, absmax INT8/INT4/INT2, both
router modes) and a 5-example GSM8K run through lm-eval, all in ONE `pack run` process with one
model load, then `pack verify` against expected/ (blessed CPU smoke values)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ecmoe

ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    "ecmoe:task2-baseline",
    "ecmoe:task2-absmax.bits-8",
    "ecmoe:task2-absmax.bits-4",
    "ecmoe:task2-absmax.bits-2",
    "ecmoe:gsm8k-baseline",
]


def _pack(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PACK_HOME=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pack", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


def test_task2_and_gsm8k_smoke_rows_in_one_process(tmp_path):
    out = tmp_path / "runs"
    res = _pack("run", *ROWS, "--out", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = {p.parent.parent.name: json.loads(p.read_text()) for p in out.glob("ecmoe/*/*/run.json")}
    assert set(runs) == {r.split(":")[1] for r in ROWS} and all(
        r["status"] == "complete" for r in runs.values()
    )
    # One model load for the whole process: only the first row loaded it.
    assert sum(r["counters"].get("model_loads", 0) for r in runs.values()) == 1
    m = runs["task2-absmax.bits-4"]["metrics"]
    for name in (
        "absmax_int4.compressed.ppl",
        "absmax_int4.uncompressed.ppl",
        "absmax_int4.mse",
        "absmax_int4.cosine",
        "absmax_int4.snr_db",
    ):
        assert name in m, name
    assert (
        m["n_response_tokens"]["values"] == runs["task2-baseline"]["metrics"]["n_response_tokens"]["values"]
    )
    snr = {
        b: runs[f"task2-absmax.bits-{b}"]["metrics"][f"absmax_int{b}.snr_db"]["values"][0] for b in (8, 4, 2)
    }
    assert snr[8] > snr[4] > snr[2]  # fewer bits, worse reconstruction of the same states
    # GSM8K: 5 examples through lm-eval; samples kept; the result upserted under its tag.
    g = runs["gsm8k-baseline"]
    assert g["metrics"]["n_examples"]["values"] == [5]
    rep = next(out.glob("ecmoe/gsm8k-baseline/*/reps/rep-000"))
    docs = {json.loads(line)["doc_id"] for line in (rep / "baseline.samples.jsonl").read_text().splitlines()}
    assert docs == {0, 1, 2, 3, 4}
    entries = json.loads((out / "ecmoe" / "downstream_results.json").read_text())
    assert [e["tag"] for e in entries] == ["baseline"] and entries[0]["limit"] == 5
    ver = _pack("verify", str(out), "--json", cwd=tmp_path)
    assert ver.returncode == 0, ver.stdout[-3000:]
    verdicts = {r["row"]: r["verdict"] for r in json.loads(ver.stdout)["rows"]}
    assert set(verdicts.values()) == {"PASS"}, verdicts
