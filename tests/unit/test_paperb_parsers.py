"""Paper B's engine output lines, the parsers that read them, and the manifest's copy of those parsers."""

import math

import pytest

from pack.experiments import command
from pack.experiments.throughput import paperb
from pack.manifest import get_manifest

pytestmark = pytest.mark.throughput

LINES = "\n".join(
    [
        "llama_model_loader: loaded meta data with 29 key-value pairs",
        "Decode-only: prefill 12.3 ms, 39.28 tok/s",
        "[ONB] rejections=3 updates=41 layers_updated=12",
        "[AXEX-GAUGE] iter 1/4 |Newton_grad|_rms=3.5e-02",
        "[AXEX-GAUGE] iter 4/4 |Newton_grad|_rms=1.25E-05",
        '[PPL-JSON] {"ppl": 7.23412, "nll": 1.97880, "tokens": 4096}',
    ]
)


@pytest.mark.parametrize("source", ["module", "manifest"])
def test_parsers_read_every_line(source):
    parsers = (
        paperb.PARSERS if source == "module" else get_manifest("paperB").row("ablation").params["parsers"]
    )
    all_arms = [{k: v for k, v in p.items() if k != "arms"} for p in parsers]
    metrics, unmatched = command.parse(LINES, all_arms, "x")
    assert unmatched == []
    assert metrics == {
        "prefill_ms": 12.3,
        "decode_tok_s": 39.28,
        "onb_rejections": 3.0,
        "onb_updates": 41.0,
        "onb_layers_updated": 12.0,
        "gauge_iter": 4.0,
        "gauge_iters": 4.0,
        "gauge_grad_rms": 1.25e-05,
        "ppl": 7.23412,
        "nll": 1.9788,
    }


def test_manifest_parsers_are_the_modules_regexes():
    manifest = {p["name"]: p for p in get_manifest("paperB").row("ablation").params["parsers"]}
    for p in paperb.PARSERS:
        assert {k: v for k, v in manifest[p["name"]].items() if k != "arms"} == p


def test_number_formats_and_a_line_that_is_not_ours():
    p = [paperb.parser("decode")]
    assert command.parse("Decode-only: prefill 0.9 ms, 120 tok/s", p, "a")[0] == {
        "prefill_ms": 0.9,
        "decode_tok_s": 120.0,
    }
    assert command.parse("Decode-only: prefill 1e3 ms, .5 tok/s", p, "a")[0] == {
        "prefill_ms": 1000.0,
        "decode_tok_s": 0.5,
    }
    metrics, unmatched = command.parse("decode: 39.28 tokens per second", p, "a")
    assert metrics == {} and unmatched == ["decode"]


def test_ppl_json_tolerates_noise_and_takes_the_last():
    p = [paperb.parser("ppl")]
    text = (
        '[PPL-JSON] {broken\n[PPL-JSON] {"ppl": 8.0, "nll": 2.0794}\n'
        'INFO [PPL-JSON] {"ppl": 7.5, "nll": 2.0149}'
    )
    assert command.parse(text, p, "a")[0] == {"ppl": 7.5, "nll": 2.0149}
    assert math.isnan(command.parse('[PPL-JSON] {"ppl": NaN, "nll": NaN}', p, "a")[0]["ppl"])


def test_parsers_scoped_to_arms():
    p = [paperb.parser("onb", arms=["compress_online"])]
    assert command.parse("nothing", p, "baseline") == ({}, [])
    assert command.parse("nothing", p, "compress_online") == ({}, ["onb"])


def test_render_args_fills_and_splices():
    params = {"rank": 1024, "model": "m.gguf", "flags": ["--a", "--b"], "none": []}
    assert command.render_args(
        ["-m", "{model}", "--rank", "{rank}", "{flags}", "{none}", "{unknown}", "x{rank}y"], params
    ) == ["-m", "m.gguf", "--rank", "1024", "--a", "--b", "{unknown}", "x1024y"]


def test_ablation_arms_carry_the_scripts_flags():
    row = get_manifest("paperB").row("ablation")
    params = row.params
    argv = {arm: command.render_args(spec["args"], params) for arm, spec in params["arms"].items()}
    compress = [
        "--axex-compress",
        "--axex-weight-pca",
        "--axex-compress-rank",
        "1024",
        "--axex-attn-only",
        "--axex-skip-o",
        "--axiom-skip-geodesic",
    ]
    assert argv["baseline"] == []
    assert argv["compress"] == compress
    assert argv["compress_gauge"] == compress + ["--axex-gauge"]
    assert argv["compress_online"] == compress + ["--axex-online-basis", "--ott-speculative"]
    assert argv["compress_spec"] == compress + ["--ott-speculative"]
    assert all(
        argv[a + "_ppl"][-1] == "--ppl-eval" and params["arms"][a + "_ppl"]["once"] for a in paperb.ARMS
    )
    for arm, flags in paperb.ARMS.items():
        assert argv[arm] == command.render_args(flags, params)
    assert command.render_args(params["args"], params) == [
        "-m",
        "data/paperB/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
        "-p",
        "Hello, the quick brown fox jumps over the lazy dog and runs into the night",
        "-n",
        "32",
        "--temp",
        "0",
    ]
    assert row.reps == 3 and row.target.hardware == "g6e.xlarge" and row.target.image == "l40s"
    assert row.runtime_estimate_s == 70 * 60 and row.max_runtime_s == 120 * 60


def test_rank_sweep_is_a_matrix_over_the_compress_rank():
    rows = [r for r in get_manifest("paperB").rows if r.id.startswith("rank-sweep.")]
    assert [r.params["rank"] for r in rows] == [256, 512, 1024, 2048]
    for r in rows:
        assert command.render_args(r.params["arms"]["compress"]["args"], r.params)[3] == str(r.params["rank"])
