"""The transformers throughput backend on the CPU: the harness-null row at smoke scale, and the
verdict flipping to CONTAMINATED when another process competes for the cores."""

import dataclasses
import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from pack.manifest import deep_merge, get_manifest  # noqa: E402
from pack.run import execute  # noqa: E402
from pack.verify import verify_run  # noqa: E402

pytestmark = pytest.mark.throughput


def run_smoke(tmp_path, reps=3, **params):
    m = get_manifest("paperB")
    rr = m.row("harness-null").at("smoke")
    rr = dataclasses.replace(rr, reps=reps, params=deep_merge(rr.params, params))
    run_dir = execute(m, rr, runs_root=tmp_path / "runs", hw_name="cpu")
    return run_dir, json.loads((run_dir / "run.json").read_text())


def test_harness_null_smoke_measures_everything(tmp_path):
    from pack.results import CACHE

    for key in [k for k in CACHE if isinstance(k, tuple) and k[0] == "hf-throughput"]:
        del CACHE[key]  # so this run's load is counted
    run_dir, run = run_smoke(tmp_path, n_decode=16)
    assert run["status"] == "complete" and run["errors"] == {}
    m = run["metrics"]
    for arm in ("baseline", "mcr"):
        assert m[f"{arm}.decode_tok_s"]["n"] == 3 and m[f"{arm}.decode_tok_s"]["mean"] > 0
        assert m[f"{arm}.prefill_ms"]["n"] == 3
        assert m[f"{arm}.ppl"]["n"] == 1  # ppl_reps 1: perplexity is deterministic
        assert len(set(m[f"{arm}.greedy_tokens_sha"]["values"])) == 1  # greedy decoding repeats itself
        assert 0 < m[f"{arm}.roofline_fraction"]["values"][0] < 1
    assert m["baseline.ppl"]["values"] == m["mcr.ppl"]["values"]  # one model, loaded once
    assert m["baseline.greedy_tokens_sha"]["values"] == m["mcr.greedy_tokens_sha"]["values"]
    assert 1000 < m["baseline.ppl"]["values"][0] < 4000  # a random model over a 2048-token vocabulary
    assert run["counters"]["model_loads"] == 1
    assert {"mcr.delta_pct", "mcr.variance_ratio", "baseline.decode_tok_s_cv", "device_bandwidth_gbs"} <= set(
        m
    )
    outputs = {p.name for p in (run_dir / "summary").iterdir()}
    assert "harness_null_summary.json" in outputs
    assert ("harness_null.csv" in outputs) != ("harness_null_run1_contaminated.csv" in outputs)
    v = verify_run(run_dir)
    judged = {mv.metric: mv.verdict for mv in v.metrics}
    assert judged["mcr.delta_pct"] in ("PASS", "FAIL", "CONTAMINATED")
    if run["contamination"]:  # a shared CI machine may well be busy: then it must say why
        assert v.verdict == "CONTAMINATED" and "rerun" in v.why


def test_a_competing_process_turns_the_verdict_contaminated(tmp_path):
    burn = "import time\nt = time.time()\nwhile time.time() - t < 120: pass"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    try:
        run_dir, run = run_smoke(tmp_path, n_decode=8)
    finally:
        for b in burners:
            b.kill()
            b.wait()
    assert any("CPU cores during the measurement" in c and "repetitions" in c for c in run["contamination"])
    v = verify_run(run_dir)
    assert v.verdict == "CONTAMINATED"
    assert "CPU cores" in v.why and "rerun" in v.why
    assert (run_dir / "summary" / "harness_null_run1_contaminated.csv").is_file()
    by = {mv.metric: mv for mv in v.metrics}
    assert by["mcr.delta_pct"].verdict == "CONTAMINATED" and by["mcr.delta_pct"].why.startswith("would be ")
