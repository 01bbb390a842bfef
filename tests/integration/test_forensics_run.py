"""The CI rows end to end on the CPU: `pack run exp0 exp1 exp4` (tiny synthetic Qwen3-MoE, smoke
scale), the uniform JSON against its schema, model loads, baseline reuse, verify, analyze, export,
NOT-APPLICABLE and ERROR configurations, non-determinism detection and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pack import results  # noqa: E402
from pack.cli import main  # noqa: E402
from pack.experiments.forensics import uniform  # noqa: E402

pytestmark = pytest.mark.forensics

ROOT = Path(__file__).resolve().parents[2]


def pack(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI in-process (the model cache is shared across tests); (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def run_dirs(out: str) -> dict[str, Path]:
    return {
        line.split("\t")[0].split(":")[1]: Path(line.split("\t")[2])
        for line in out.splitlines()
        if "\t" in line
    }


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def values(run_dir: Path) -> dict:
    return {k: v["values"][0] for k, v in record(run_dir)["metrics"].items()}


@pytest.fixture(scope="module")
def ci_runs(tmp_path_factory):
    """exp0, exp1, exp4 in one process with an empty model cache (what CI runs)."""
    out = tmp_path_factory.mktemp("runs")
    results.CACHE.clear()
    import contextlib
    import io

    so, se = io.StringIO(), io.StringIO()  # a module fixture cannot use capsys
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se), pytest.raises(SystemExit) as e:
        main(["run", "exp0", "exp1", "exp4", "--out", str(out)])
    assert (e.value.code or 0) == 0, se.getvalue()[-3000:]
    return out, run_dirs(so.getvalue()), se.getvalue()


def test_ci_rows_complete_with_valid_uniform_json(ci_runs):
    _, dirs, _ = ci_runs
    assert set(dirs) == {"exp0", "exp1", "exp4"}
    names = {"exp0": "reference_baseline", "exp1": "batch_size_experiment", "exp4": "attention_experiment"}
    for row, d in dirs.items():
        rec = record(d)
        assert rec["status"] == "complete" and rec["errors"] == {} and rec["not_applicable"] == {}
        doc = json.loads((d / "summary" / f"{names[row]}.json").read_text())
        assert uniform.validate(doc) == []
        assert (d / "summary" / f"{names[row]}.safetensors").is_file()
        assert values(d)["uniform_json_valid"] == 1 and values(d)["storage_ratio"] <= 0.25
        assert values(d)["decode_steps"] == 4
    m = values(dirs["exp1"])
    assert m["bs2.reps_bit_identical"] == 1 and m["bs4.reps_bit_identical"] == 1
    assert values(dirs["exp0"])["baseline.reps_bit_identical"] == 1
    assert values(dirs["exp4"])["eager.l2_hidden_last"] > 0  # eager vs sdpa is visible on the CPU


def test_signals_are_stored_once_when_repetitions_are_bit_identical(ci_runs):
    _, dirs, _ = ci_runs
    d = dirs["exp0"]
    assert (d / "reps" / "rep-000" / "signals.safetensors").is_file()
    assert not (d / "reps" / "rep-001" / "signals.safetensors").exists()
    doc = json.loads((d / "summary" / "reference_baseline.json").read_text())
    assert {r["signals_key"] for r in doc["runs"]} == {"cpu_baseline/rep0"}
    assert [r["rep_id"] for r in doc["runs"]] == [0, 1, 2] and all(
        r["bit_identical_to_rep0"] for r in doc["runs"]
    )


def test_model_loaded_once_per_load_affecting_setting_and_baseline_reused(ci_runs):
    _, dirs, err = ci_runs
    loads = {row: record(d)["counters"]["model_loads"] for row, d in dirs.items()}
    assert loads == {"exp0": 1, "exp1": 0, "exp4": 1}  # exp1 reuses exp0's model; eager is a second load
    assert "counters: model_loads=1" in (dirs["exp0"] / "run.log").read_text()
    for row in ("exp1", "exp4"):  # exp0's data is the baseline: imported, not re-run
        doc = json.loads(next((dirs[row] / "summary").glob("*_experiment.json")).read_text())
        base = [c for c in doc["configurations"] if c["is_baseline"]]
        assert len(base) == 1 and base[0]["imported_from"] == dirs["exp0"].name
        assert (
            "baseline"
            not in json.loads((dirs[row] / "reps/rep-000/rep.json").read_text())["result"]["info"]["configs"]
        )


def test_verify_passes_the_ci_rows(ci_runs, capsys):
    out_dir, dirs, _ = ci_runs
    code, out, _ = pack(capsys, "verify", str(out_dir / "forensics"), "--brief")
    assert code == 0, out
    for row in dirs:
        assert row in out


def test_analyze_and_export_seed_json(ci_runs, tmp_path, capsys):
    out_dir, dirs, _ = ci_runs
    code, out, err = pack(
        capsys, "analyze", "forensics", str(out_dir / "forensics"), "--out", str(tmp_path / "a")
    )
    assert code == 0 and "only one hardware kind" in out
    assert "attention" in out and (tmp_path / "a" / "analysis.md").is_file()
    assert (tmp_path / "a" / "l2_by_layer_attention.png").stat().st_size > 1000
    md = (tmp_path / "a" / "analysis.md").read_text()
    assert "| key_vectors/layer_14 |" in md
    code, out, _ = pack(
        capsys, "export", str(dirs["exp4"]), "--format", "seed-json", "-o", str(tmp_path / "att.json")
    )
    assert code == 0
    seed = json.loads((tmp_path / "att.json").read_text())
    assert uniform.validate(seed) == []
    step = seed["runs"][-1]["decode_steps"][2]
    assert set(step["hidden_states"]) == {"layer_1", "layer_2", "layer_4", "layer_12", "layer_14"}
    assert (
        len(step["key_vectors"]["layer_14"]["pos_-3"]) == 32
        and len(step["logprobs"]["pos_-1"]["log_probs"]) == 10
    )
    code, _, err = pack(
        capsys, "export", str(out_dir / "forensics"), "--format", "seed-json", "-o", str(tmp_path / "x.json")
    )
    assert code == 2 and "hold 3 experiments" in err


def _project(tmp_path: Path, rows: str) -> Path:
    """A throwaway project (PACK_HOME) with the real catalogues and a test manifest."""
    (tmp_path / "manifests").mkdir(parents=True)
    for f in ("hardware.yaml", "images.yaml"):
        shutil.copy(ROOT / "manifests" / f, tmp_path / "manifests" / f)
    head = (
        "paper: ftest\ntitle: t\nsource: test\ndefaults:\n  experiment: forensics\n  reps: 2\n"
        '  target: {hardware: cpu}\n  params: {model: "synthetic:tiny-qwen3-moe", dtype: bfloat16,'
        " prompt_tokens: 24, decode_steps: 3, cpu_threads: 1}\nrows:\n"
    )
    (tmp_path / "manifests" / "ftest.yaml").write_text(head + rows)
    return tmp_path


def test_gpu_only_rows_are_not_applicable_on_cpu(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(
        "PACK_HOME",
        str(
            _project(
                tmp_path / "p",
                (
                    "  - {id: streams, cell: c, params: {experiment_type: concurrent_streams, values: "
                    "[true]}}\n  - {id: cu118, cell: c, params: {experiment_type: cuda_version, values: "
                    "['11.8']}}\n"
                ),
            )
        ),
    )
    code, out, err = pack(capsys, "run", "streams", "cu118", "--out", str(tmp_path / "runs"))
    assert code == 0, err
    d = run_dirs(out)
    assert "need a CUDA GPU" in record(d["streams"])["not_applicable"]["streams"]
    assert "run it in image cu118" in record(d["cu118"])["not_applicable"]["cu118"]
    doc = json.loads((d["streams"] / "summary" / "concurrent_streams_experiment.json").read_text())
    assert doc["configurations"][0]["status"] == "not_applicable" and doc["runs"] == []


def test_failing_compile_is_an_error_for_that_configuration_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(
        "PACK_HOME",
        str(
            _project(
                tmp_path / "p",
                (
                    "  - {id: comp, cell: c, params: {experiment_type: compile, values: [true], "
                    "compile_backend: no-such-backend}}\n"
                ),
            )
        ),
    )
    code, out, err = pack(capsys, "run", "comp", "--out", str(tmp_path / "runs"))
    d = run_dirs(out)["comp"]
    rec = record(d)
    assert rec["status"] == "complete"
    assert (
        rec["errors"]["compile"].startswith("torch.compile failed:")
        and "no-such-backend" in rec["errors"]["compile"]
    )
    assert values(d)["baseline.reps_bit_identical"] == 1  # no exp0 run here: the baseline ran in-run
    doc = json.loads((d / "summary" / "compile_experiment.json").read_text())
    status = {c["label"]: c["status"] for c in doc["configurations"]}
    assert status == {"baseline": "ok", "compile": "error"}


def test_compile_that_would_fall_back_to_eager_is_an_error(tmp_path, capsys, monkeypatch):
    """Past dynamo's recompile limit a frame silently runs eagerly: the compile label would then
    carry eager numerics. A limit of 1 (the decode needs ~3 graphs) must fail the configuration."""
    import torch._dynamo

    torch._dynamo.reset()  # other tests' compiled frames must not count against the limit
    monkeypatch.setenv(
        "PACK_HOME",
        str(
            _project(
                tmp_path / "p",
                "  - {id: comp, cell: c, params: {experiment_type: compile, values: [true], "
                "compile_backend: eager}}\n",
            )
        ),
    )
    # config.patch, not monkeypatch: recompile_limit is an alias that monkeypatch's undo would delete
    with torch._dynamo.config.patch(recompile_limit=1):
        code, out, err = pack(capsys, "run", "comp", "--out", str(tmp_path / "runs"))
    torch._dynamo.reset()
    rec = record(run_dirs(out)["comp"])
    assert "recompile limit (1)" in rec["errors"]["compile"], rec["errors"]
    assert "eagerly" in rec["errors"]["compile"]


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            "  - {id: bad, cell: c, params: {experiment_type: reference, layers: [1, 20]}}\n",
            "layer 20 is beyond synthetic:tiny-qwen3-moe, which has 14 decoder layers (valid: 1..14 or "
            "'last')",
        ),
        (
            "  - {id: bad, cell: c, params: {experiment_type: reference, model: /no/such/checkpoint}}\n",
            "model path '/no/such/checkpoint' does not exist",
        ),
        (
            "  - {id: bad, cell: c, params: {experiment_type: reference, documents: [DOC], prompt_tokens: "
            "4000}}\n",
            "has only",
        ),
    ],
)
def test_bad_input_is_one_sentence_with_exit_code_2(tmp_path, capsys, monkeypatch, rows, message):
    doc = tmp_path / "short.txt"
    doc.write_text("A short document. " * 10)
    monkeypatch.setenv("PACK_HOME", str(_project(tmp_path / "p", rows.replace("DOC", str(doc)))))
    code, _, err = pack(capsys, "run", "bad", "--out", str(tmp_path / "runs"))
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("pack: error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_non_determinism_is_reported_with_the_first_divergence_and_stops(tmp_path, capsys, monkeypatch):
    """Fault injection: repetition 2's decode is perturbed at unique row 4 (step 2, position -1)."""
    from pack.experiments.forensics import runner

    real = runner.run_config

    def perturbed(ctx, p, cfg, spec, **kw):
        sig, facts = real(ctx, p, cfg, spec, **kw)
        if ctx.rep_index == 1:
            sig.hidden[4][4, 0] += 0.5
        return sig, facts

    monkeypatch.setattr(runner, "run_config", perturbed)
    monkeypatch.setenv(
        "PACK_HOME",
        str(
            _project(
                tmp_path / "p",
                ("  - {id: nd, cell: c, reps: 3, params: {experiment_type: batch_size, values: [2]}}\n"),
            )
        ),
    )
    code, out, err = pack(capsys, "run", "nd", "--out", str(tmp_path / "runs"))
    d = run_dirs(out)["nd"]
    rec = record(d)
    assert values(d)["baseline.reps_bit_identical"] == 0
    assert "step 2 (hidden_states)" in rec["errors"]["baseline.determinism"]
    assert "non-deterministic" in rec["errors"]["bs2"]  # stopped: the next configuration did not run
    assert "experiment stopped" in err
    doc = json.loads((d / "summary" / "batch_size_experiment.json").read_text())
    base = next(c for c in doc["configurations"] if c["label"] == "baseline")
    assert base["status"] == "non_deterministic"
    fd = base["first_divergence"]
    assert (fd["step"], fd["signal"], fd["layer"], fd["position"]) == (2, "hidden_states", 4, -1)
    assert (d / "reps" / "rep-001" / "signals.safetensors").is_file()  # both versions are kept


def test_files_from_two_machines_merge_into_a_cross_hardware_analysis(ci_runs, tmp_path, capsys, monkeypatch):
    """A second 'machine' (the same CPU under another hardware label) gives the cross-hardware path:
    identical numerics there, so the noise is 0 and eager attention is Strong (SNR infinite)."""
    out_dir, _, _ = ci_runs
    home = tmp_path / "home"  # --hw must be a catalogue name: this catalogue knows a second CPU machine
    shutil.copytree(ROOT / "manifests", home / "manifests")
    shutil.copytree(ROOT / "expected", home / "expected")
    with open(home / "manifests" / "hardware.yaml", "a") as f:
        f.write("  cpu-b: {provider: local, description: a second CPU machine (test)}\n")
    monkeypatch.setenv("PACK_HOME", str(home))
    code, _, err = pack(capsys, "run", "exp0", "exp4", "--hw", "cpu-b", "--out", str(tmp_path / "b"))
    assert code == 0, err[-2000:]
    code, out, _ = pack(
        capsys,
        "analyze",
        "forensics",
        str(out_dir / "forensics" / "exp0"),
        str(out_dir / "forensics" / "exp4"),
        str(tmp_path / "b" / "forensics"),
        "--out",
        str(tmp_path / "a"),
        "--no-plots",
    )
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("attention"))
    assert line.split()[2] == "0" and "∞" in line and line.endswith("Strong")
    rep = json.loads((tmp_path / "a" / "analysis.json").read_text())["reports"]
    att = next(r for r in rep if r["experiment"] == "attention")
    assert att["hardware"] == ["cpu", "cpu-b"] and set(att["cross_hardware_detectability"]) == {
        "cpu->cpu-b",
        "cpu-b->cpu",
    }
