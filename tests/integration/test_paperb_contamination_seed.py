"""Paper B's contamination signal, from the seed's own numbers, through the real `command` path.

A stand-in engine (a small Python script) prints Paper B's llama.cpp-style lines; each arm's decode
rate over the repetitions comes from a series the test sets. Seed 000: the clean baseline is
39.28 ± 0.05 tok/s, the contaminated run's variance ratio was 21x, a clean re-run sits at 1x-1.5x.
"""

import dataclasses
import json
import math
import stat
import sys

import pytest

from pack.manifest import Target, deep_merge, get_manifest
from pack.run import execute
from pack.verify import verify_run

pytestmark = pytest.mark.throughput

ENGINE = r'''#!{python}
"""Stand-in for Paper B's engine: prints its timing lines; the rate per call comes from FAKE_SERIES_<ARM>."""
import json, os, sys
args = sys.argv[1:]
if "--version" in args:
    print("stand-in paper-b engine (pack test)")
    sys.exit(0)
arm = "mcr" if "--fake-mcr" in args else "baseline"
if "--ppl-eval" in args:
    print("[PPL-JSON] " + json.dumps({"ppl": 7.2341, "nll": 1.9788}))
    sys.exit(0)
state = os.path.join(os.environ["FAKE_DIR"], arm + ".calls")
with open(state, "a") as f:
    f.write("x")
n = os.path.getsize(state) - 1
series = [float(x) for x in os.environ["FAKE_SERIES_" + arm.upper()].split(",")]
print("llama_print_timings:        load time =   812.33 ms")
print(f"Decode-only: prefill 12.3 ms, {series[n % len(series)]:{os.environ.get('FAKE_FMT', '.3f')}} tok/s")
'''

BASE = [39.234, 39.280, 39.326]  # 39.28 ± 0.046 (sample std 0.046)


@pytest.fixture
def engine(tmp_path, monkeypatch):
    path = tmp_path / "paperb-engine"
    path.write_text(ENGINE.replace("{python}", sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PAPERB_ENGINE", str(path))
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    return tmp_path


def run_mcr_null(tmp_path, monkeypatch, base, mcr, reps=3, fmt=".3f", **params):
    monkeypatch.setenv("FAKE_SERIES_BASELINE", ",".join(map(str, base)))
    monkeypatch.setenv("FAKE_SERIES_MCR", ",".join(map(str, mcr)))
    monkeypatch.setenv("FAKE_FMT", fmt)
    m = get_manifest("paperB")
    rr = m.row("mcr-null").at("full")
    rr = dataclasses.replace(
        rr,
        target=Target(hardware="cpu"),
        reps=reps,
        params=deep_merge(rr.params, {"mcr_args": ["--fake-mcr"], **params}),
    )
    run_dir = execute(m, rr, runs_root=tmp_path / "runs", hw_name="cpu")
    return run_dir, json.loads((run_dir / "run.json").read_text())


def spread(std, mean=39.28):
    return [round(mean - std, 4), mean, round(mean + std, 4)]


def test_the_seeds_21x_variance_ratio_is_seen_and_the_run_is_contaminated(engine, tmp_path, monkeypatch):
    # MCR 39.23 ± 0.210: the case, which the old 1 % CV floor reported as 0.9975x.
    run_dir, run = run_mcr_null(tmp_path, monkeypatch, BASE, [39.020, 39.230, 39.440])
    m = run["metrics"]
    assert m["baseline.decode_tok_s"]["values"] == BASE
    assert m["mcr.variance_ratio"]["values"][0] == pytest.approx((0.210 / 0.046) ** 2, rel=1e-3)  # not 0.9975
    assert any("variance ratio mcr/baseline of decode_tok_s is 20.84x" in c for c in run["contamination"])
    low, high = m["mcr.delta_pct_ci_low"]["values"][0], m["mcr.delta_pct_ci_high"]["values"][0]
    delta = m["mcr.delta_pct"]["values"][0]
    assert delta == pytest.approx(100 * (39.23 - 39.28) / 39.28, abs=1e-3) and low < delta < high
    assert 0 < m["mcr.variance_p"]["values"][0] < 1
    js = json.loads((run_dir / "summary" / "mcr_ablation_summary.json").read_text())
    assert js["contaminated"] is True and js["variance_ratio"]["mcr"] == pytest.approx(20.8412, abs=1e-3)
    assert js["delta_pct_ci"]["mcr"] == [low, high] and "mcr" in js["variance_p_brown_forsythe"]
    assert js["arms"]["baseline"]["resolution_std"] == pytest.approx(0.001 / math.sqrt(12), rel=0.01)
    v = verify_run(run_dir)
    assert v.verdict == "CONTAMINATED"
    assert next(x for x in v.metrics if x.metric == "mcr.variance_ratio").verdict == "CONTAMINATED"


@pytest.mark.parametrize("ratio", [1.0, 1.5])
def test_a_clean_rerun_at_1x_to_1_5x_is_clean(engine, tmp_path, monkeypatch, ratio):
    mcr = spread(0.046 * math.sqrt(ratio) - 1e-5)
    run_dir, run = run_mcr_null(tmp_path, monkeypatch, BASE, mcr, fmt=".4f")
    assert run["metrics"]["mcr.variance_ratio"]["values"][0] == pytest.approx(ratio, rel=2e-3)
    assert run["contamination"] == []
    assert verify_run(run_dir).verdict != "CONTAMINATED"
    js = json.loads((run_dir / "summary" / "mcr_ablation_summary.json").read_text())
    assert js["arms"]["mcr"]["variance_band"].startswith("clean")
    assert (run_dir / "summary" / "mcr_ablation.csv").is_file()


def test_printed_to_two_decimals_the_seed_signal_survives(engine, tmp_path, monkeypatch):
    # Paper B prints "39.28 tok/s": the floor is that print step (0.01 / sqrt(12)), not 1 % of the rate.
    _, run = run_mcr_null(tmp_path, monkeypatch, [39.23, 39.28, 39.33], [39.07, 39.28, 39.49], fmt=".2f")
    assert run["metrics"]["mcr.variance_ratio"]["values"][0] == pytest.approx((0.21 / 0.05) ** 2, rel=1e-3)
    assert run["contamination"]


def test_alternate_order_reverses_the_arms_on_odd_repetitions(engine, tmp_path, monkeypatch):
    ab = {"metric": "decode_tok_s", "reference": "baseline", "order": "alternate"}
    run_dir, run = run_mcr_null(tmp_path, monkeypatch, BASE, BASE, reps=2, ab=ab)
    order = [
        [k for k in json.loads(p.read_text())["result"]["info"] if k in ("baseline", "mcr")]
        for p in sorted((run_dir / "reps").glob("rep-*/rep.json"))
    ]
    assert order == [["baseline", "mcr"], ["mcr", "baseline"]]
