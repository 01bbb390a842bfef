"""Paper B's engine rows end to end through the `command` experiment, against a small engine this
test writes: it prints the engine's four output formats, keyed by the flags each arm passes, and can
be told to fail, to print nothing parsable, to scatter its throughput or to run slow."""

import dataclasses
import json
import os
import stat
import sys

import pytest

from pack.manifest import Target, deep_merge, get_manifest
from pack.run import execute
from pack.verify import verify_run

pytestmark = pytest.mark.throughput

ENGINE = r'''#!{python}
"""A stand-in for Paper B's engine: same flags, same output lines (written by the pack's tests)."""
import json, math, os, sys
args = sys.argv[1:]
if "--version" in args:
    print("fake-axex-engine 0.1 (pack test)")
    sys.exit(0)
state = os.environ["FAKE_STATE"]
with open(state, "a") as f:
    f.write(" ".join(args) + "\n")
with open(state) as f:
    calls = [line.rstrip("\n") for line in f]
n = len(calls)
k = calls.count(" ".join(args)) - 1  # earlier calls of this arm
flags = set(args)
if os.environ.get("FAKE_FAIL_FLAG") in flags:
    print("loading model ...")
    print("GGML_ASSERT: ggml-cuda.cu:1234: out of memory", file=sys.stderr)
    sys.exit(3)
if os.environ.get("FAKE_SILENT_FLAG") in flags:
    print("generation finished, no timings today")
    sys.exit(0)
tok = float(os.environ.get("FAKE_TOKS", "39.28"))
for flag, speed in (("--axex-compress", 1.05), ("--ott-speculative", 1.07), ("--axex-online-basis", 1.03),
                    ("--fake-mcr", 39.23 / 39.28)):
    if flag in flags:
        tok *= speed
tok += 0.05 * (-1, 0, 1)[k % 3]  # a quiet GPU: the seed's clean scatter, 39.28 plus or minus 0.05 tok/s
if os.environ.get("FAKE_NOISE_FLAG") in flags:
    tok *= (0.70, 1.25, 0.85, 1.15)[n % 4]
ppl = 7.2341 + (0.0512 if "--axex-compress" in flags else 0.0)
if "--ppl-eval" in flags:
    print("[PPL-JSON] " + json.dumps({"ppl": ppl, "nll": math.log(ppl), "tokens": 4096}))
else:
    print(f"Decode-only: prefill 12.3 ms, {tok:.2f} tok/s")
if "--axex-online-basis" in flags:
    print("[ONB] rejections=3 updates=41 layers_updated=12")
if "--axex-gauge" in flags:
    iters = int(args[args.index("--axex-gauge-iter") + 1]) if "--axex-gauge-iter" in flags else 4
    for i in range(1, iters + 1):
        print(f"[AXEX-GAUGE] iter {i}/{iters} |Newton_grad|_rms={1e-2 / i ** 2:.3e}")
'''

FIVE = ["baseline", "compress", "compress_gauge", "compress_online", "compress_spec"]


@pytest.fixture
def engine(tmp_path, monkeypatch):
    path = tmp_path / "axex-engine"
    path.write_text(ENGINE.replace("{python}", sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    state = tmp_path / "invocations.txt"
    monkeypatch.setenv("PAPERB_ENGINE", str(path))
    monkeypatch.setenv("FAKE_STATE", str(state))
    for var in ("FAKE_FAIL_FLAG", "FAKE_SILENT_FLAG", "FAKE_NOISE_FLAG", "FAKE_TOKS"):
        monkeypatch.delenv(var, raising=False)
    return state


def run_row(row_id, tmp_path, **params):
    m = get_manifest("paperB")
    rr = m.row(row_id).at("full")
    # The engine rows target an L40S / a local GPU; the stand-in engine runs anywhere.
    rr = dataclasses.replace(rr, target=Target(hardware="cpu"), params=deep_merge(rr.params, params))
    run_dir = execute(m, rr, runs_root=tmp_path / "runs", hw_name="cpu")
    return run_dir, json.loads((run_dir / "run.json").read_text())


def test_five_arm_ablation_end_to_end(engine, tmp_path):
    run_dir, run = run_row("ablation", tmp_path, gauge_iter_args=["--axex-gauge-iter", 6])
    assert run["status"] == "complete" and run["errors"] == {}
    m = run["metrics"]
    for arm in FIVE:
        assert m[f"{arm}.decode_tok_s"]["n"] == 3, arm  # 3 throughput runs per arm
        assert m[f"{arm}.prefill_ms"]["values"] == [12.3] * 3
        assert m[f"{arm}_ppl.ppl"]["n"] == 1  # 1 perplexity run per arm
    assert m["baseline_ppl.ppl"]["values"] == [7.2341] and m["compress_ppl.ppl"]["values"] == [
        pytest.approx(7.2853)
    ]
    assert m["compress_online.onb_updates"]["values"] == [41.0] * 3
    assert m["compress_gauge.gauge_iters"]["values"] == [6.0] * 3
    assert m["compress_gauge.gauge_grad_rms"]["values"][0] == pytest.approx(1e-2 / 36, rel=1e-3)
    assert m["compress.delta_pct"]["values"][0] == pytest.approx(5.0, abs=0.2)
    assert m["compress_online.delta_pct"]["values"][0] == pytest.approx(
        100 * (1.05 * 1.07 * 1.03 - 1), abs=0.2
    )
    assert m["compress.variance_ratio"]["values"][0] == pytest.approx(1.0, rel=0.2)
    assert run["contamination"] == []
    # Interleaved: every repetition runs the arms in order, the perplexity arms only in the first.
    calls = engine.read_text().splitlines()
    assert len(calls) == 5 * 3 + 5
    kinds = ["ppl" if "--ppl-eval" in c else "tok" for c in calls]
    assert kinds == ["tok"] * 5 + ["ppl"] * 5 + ["tok"] * 10
    assert "--axex-compress-rank 1024" in calls[1] and calls[0].endswith("--temp 0")
    assert "--axex-gauge --axex-gauge-iter 6" in calls[2]
    summary = run_dir / "summary"
    rows = (summary / "paperB_ablation_l40s.csv").read_text().splitlines()
    assert rows[0].startswith("run,arm,decode_tok_s") and len(rows) == 1 + 15
    js = json.loads((summary / "paperB_ablation_l40s_summary.json").read_text())
    assert js["contaminated"] is False and set(js["delta_pct"]) == set(FIVE[1:])
    prov = run["experiment_provenance"]["command"]
    assert len(prov["sha256"]) == 64 and "fake-axex-engine" in prov["version_text"]
    v = verify_run(run_dir)  # no per-arm numbers in the seed: measured, not judged
    assert v.verdict == "NOT-APPLICABLE"


def test_roofline_from_the_rows_model(engine, tmp_path):
    from tests.unit.test_gguf_check import _write

    model = _write(tmp_path / "m.gguf")
    run_dir, run = run_row(
        "ablation", tmp_path, model=str(model), roofline={"bandwidth_gbs": 864, "position": 37}
    )
    m = run["metrics"]
    assert m["device_bandwidth_gbs"]["values"] == [864.0]
    assert (
        0 < m["baseline.roofline_fraction"]["values"][0]
        and m["baseline.roofline_bound_tok_s"]["values"][0] > 1e6
    )


def test_failing_arm_is_error_with_its_tail_and_the_others_still_run(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_FLAG", "--axex-gauge")
    run_dir, run = run_row("ablation", tmp_path)
    assert run["status"] == "complete"
    assert set(run["errors"]) == {"compress_gauge", "compress_gauge_ppl"}
    msg = run["errors"]["compress_gauge"]
    assert (
        msg.startswith("exited with code 3; last lines:") and "GGML_ASSERT" in msg and "loading model" in msg
    )
    for arm in ["baseline", "compress", "compress_online", "compress_spec"]:
        assert run["metrics"][f"{arm}.decode_tok_s"]["n"] == 3
    v = verify_run(run_dir)
    assert v.verdict == "ERROR"
    assert {m.metric for m in v.metrics if m.verdict == "ERROR"} == {"compress_gauge", "compress_gauge_ppl"}


def test_output_no_parser_matches_names_the_parser(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SILENT_FLAG", "--ott-speculative")
    _, run = run_row("ablation", tmp_path)
    msg = run["errors"]["compress_spec"]
    assert msg.startswith("no output matched parser(s) decode; last lines:") and "no timings today" in msg
    assert "onb" in run["errors"]["compress_online"] and "decode" in run["errors"]["compress_online"]
    assert "ppl" in run["errors"]["compress_spec_ppl"]
    assert run["metrics"]["baseline.decode_tok_s"]["n"] == 3


def test_absent_engine_is_an_error_for_every_arm(tmp_path, monkeypatch):
    monkeypatch.delenv("PAPERB_ENGINE", raising=False)
    run_dir, run = run_row("mcr-null", tmp_path)
    assert set(run["errors"]) == {"baseline", "mcr", "baseline_ppl", "mcr_ppl"}
    assert "PAPERB_ENGINE" in run["errors"]["mcr"] and "not set" in run["errors"]["mcr"]
    run_dir, run = run_row("mcr-null", tmp_path, executable=str(tmp_path / "no-such-engine"))
    assert "not found" in run["errors"]["baseline"]
    assert verify_run(run_dir).verdict == "ERROR"


def test_mcr_null_clean_on_another_gpu_is_measured_but_not_applicable(engine, tmp_path):
    run_dir, run = run_row("mcr-null", tmp_path, mcr_args=["--fake-mcr"])
    summary = run_dir / "summary"
    assert (summary / "mcr_ablation.csv").is_file() and not list(summary.glob("*contaminated*"))
    js = json.loads((summary / "mcr_ablation_summary.json").read_text())
    assert js["delta_pct"]["mcr"] == pytest.approx(-0.13, abs=0.1) and js["contaminated"] is False
    v = verify_run(run_dir)
    by = {m.metric: m for m in v.metrics}
    assert by["baseline.decode_tok_s"].verdict == "NOT-APPLICABLE"
    assert "holds on GPU RTX 4060" in by["baseline.decode_tok_s"].why
    assert by["baseline.decode_tok_s"].measured == pytest.approx(39.28, abs=0.1)  # still measured
    assert by["mcr.variance_ratio"].verdict == "PASS"
    assert v.verdict == "PASS"


def test_noisy_arm_makes_the_run_contaminated_and_keeps_the_csv_for_audit(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_NOISE_FLAG", "--fake-mcr")
    run_dir, run = run_row("mcr-null", tmp_path, mcr_args=["--fake-mcr"])
    assert any(
        "variance ratio mcr/baseline" in c and "beyond the row's limit of 5x" in c
        for c in run["contamination"]
    )
    summary = run_dir / "summary"
    assert (summary / "mcr_ablation_run1_contaminated.csv").is_file() and not (
        summary / "mcr_ablation.csv"
    ).exists()
    js = json.loads((summary / "mcr_ablation_summary.json").read_text())
    assert js["contaminated"] is True and js["advice"] == "close co-resident GPU work and rerun"
    v = verify_run(run_dir)
    assert v.verdict == "CONTAMINATED" and "variance ratio" in v.why and "rerun" in v.why
    vr = next(m for m in v.metrics if m.metric == "mcr.variance_ratio")
    assert vr.verdict == "CONTAMINATED" and vr.why.startswith("would be FAIL")


def test_throughput_under_the_floor_is_contamination_where_the_floor_holds(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TOKS", "37.0")
    floor_here = {
        "ab": {
            "metric": "decode_tok_s",
            "reference": "baseline",
            "variance_ratio_limit": 5,
            "floor": {"value": 38, "gpu": ["cpu"]},
        }
    }
    _, run = run_row("mcr-null", tmp_path, **floor_here)
    assert any(
        "arm 'baseline' mean decode_tok_s 37.00 is under the row's floor of 38" in c
        for c in run["contamination"]
    )
    _, run = run_row("mcr-null", tmp_path)  # the shipped floor holds on an RTX 4060 only
    assert run["contamination"] == []


def test_engine_binary_is_fingerprinted(engine, tmp_path):
    from pack.fsio import sha256_file

    _, run = run_row("mcr-null", tmp_path)
    assert run["experiment_provenance"]["command"]["sha256"] == sha256_file(os.environ["PAPERB_ENGINE"])
