"""`pack run` tells the truth (exit codes, the per-row summary, missing inputs), which run is judged is
explicit (per row and scale, newer unfinished/errored runs named), environment faults are sentences."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import types

import pytest

from pack import fsio, gpuinfo
from pack.errors import FilesystemError, MissingInput
from pack.manifest import find_row
from pack.run import execute
from pack.rundir import RunDir, RunStatus, all_runs


def runs_of(tmp_path, paper, row):
    return sorted(p for p in (tmp_path / "runs" / paper / row).iterdir() if not p.name.startswith("."))


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is not None, reason="llama.cpp is installed here")
def test_an_arm_that_cannot_run_makes_pack_run_exit_1_with_a_summary(pack):
    res = pack("run", "llamacpp-null", check=1)
    last = res.stdout.splitlines()
    assert last[-2] == "pack run: 1 of 1 row(s) errored, 0 skipped:"
    assert last[-1].startswith("  paperB:llamacpp-null  error") and "llama_cpp" in last[-1]


@pytest.mark.skipif(gpuinfo.has_cuda(), reason="needs a machine without a CUDA GPU")
def test_every_row_skipped_is_exit_2_with_the_reasons(pack, tmp_path):
    res = pack("run", "paperB", "--scale", "full", check=2)
    assert "pack run: nothing ran; all" in res.stdout and "row(s) were skipped on this machine:" in res.stdout
    assert "paperB:ablation" in res.stdout and "no CUDA GPU" in res.stdout
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("run.json"))


def test_missing_input_file_is_one_sentence_and_recorded(pack, tmp_path):
    res = pack("run", "wire-compression", "--scale", "full", "--reps", "1", check=2)
    assert "Traceback" not in res.stderr and "FileNotFoundError" not in res.stderr
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("pack: error: ") and "gsm8k_test.jsonl" in err and "not found" in err
    [run] = runs_of(tmp_path, "latent-bridge", "wire-compression")
    rec = RunDir(run).record
    assert rec.status is RunStatus.error and "gsm8k_test.jsonl" in rec.errors["__run__"]


def _fake_experiment(monkeypatch, run_rep):
    """A stand-in experiment *module* (the runner's plug-in interface), not a stand-in backend."""
    from pack import registry

    monkeypatch.setattr(registry, "load", lambda name: types.SimpleNamespace(run_rep=run_rep))


def test_a_file_not_found_inside_any_experiment_becomes_missing_input(home, tmp_path, monkeypatch):
    def run_rep(params, ctx):
        open("/nonexistent/pack-test/input.jsonl")

    _fake_experiment(monkeypatch, run_rep)
    m, r = find_row("int6-clip-search")
    with pytest.raises(MissingInput) as e:
        execute(m, r.at("smoke"), runs_root=tmp_path / "runs")
    assert "input file /nonexistent/pack-test/input.jsonl not found" in str(e.value)
    assert "pack show int6-clip-search" in str(e.value)
    [rd] = all_runs(tmp_path / "runs")
    assert rd.record.status is RunStatus.error and rd.error_path.is_file()  # the traceback, for a maintainer


def test_disk_full_mid_run_is_a_sentence_and_keeps_finished_reps(home, tmp_path, monkeypatch):
    """ENOSPC at the second repetition's rep.json: a sentence naming the file, repetition 1 intact,
    and --resume (with space again) finishes the run keeping repetition 1."""
    from pack.experiments import int6_clip_search as real

    m, r = find_row("int6-clip-search")
    rr = r.at("smoke")
    replace = os.replace
    calls = {"rep.json": 0}

    def full_disk(src, dst, *a, **k):
        if os.path.basename(dst) == "rep.json":
            calls["rep.json"] += 1
            if calls["rep.json"] == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return replace(src, dst, *a, **k)

    monkeypatch.setattr(fsio.os, "replace", full_disk)
    with pytest.raises(FilesystemError) as e:
        execute(m, rr, runs_root=tmp_path / "runs")
    msg = str(e.value)
    assert "rep.json: no space left on the device (disk full)" in msg and "\n" not in msg
    [rd] = all_runs(tmp_path / "runs")
    assert rd.finished_rep(0) is not None and not rd.rep_dir(1).exists() and not rd.partial_reps()
    assert rd.record.status is RunStatus.error and "no space left" in rd.record.errors["__run__"]
    monkeypatch.setattr(fsio.os, "replace", replace)
    kept = (rd.rep_dir(0) / "rep.json").stat().st_mtime_ns
    execute(m, rr, runs_root=tmp_path / "runs", resume=True)
    rd = RunDir(rd.path)
    assert rd.record.status is RunStatus.complete and [t.kept for t in rd.record.reps] == [True, False]
    assert (rd.rep_dir(0) / "rep.json").stat().st_mtime_ns == kept and rd.integrity() == []
    assert real  # the real experiment ran both times


def test_a_file_where_a_folder_must_be_is_a_sentence(pack, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    res = pack("run", "int6-clip-search", "--out", blocker, check=2)
    assert f"{blocker}" in res.stderr and "a file is where a folder is expected" in res.stderr
    assert "Traceback" not in res.stderr and blocker.read_text() == "x"  # nothing already written is lost
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "local-ablation").write_text("mine")
    res = pack("run", "int6-clip-search", check=2)
    assert "runs/local-ablation" in res.stderr and "a file is where a folder is expected" in res.stderr
    assert (tmp_path / "runs" / "local-ablation").read_text() == "mine"


def test_a_folder_where_a_file_must_be_is_a_sentence(pack, tmp_path):
    pack("run", "int6-clip-search", check=0)
    [run] = runs_of(tmp_path, "local-ablation", "int6-clip-search")
    (run / "SHA256SUMS").unlink()  # unfinished: --resume takes this folder, where env.json is now a folder
    (run / "env.json").unlink()
    (run / "env.json").mkdir()
    res = pack("run", "int6-clip-search", "--resume", check=2)
    assert "env.json: a folder is where a file is expected" in res.stderr and "Traceback" not in res.stderr
    assert (run / "env.json").is_dir() and RunDir(run).finished_rep(0) is not None


def test_verify_paths_and_names_that_name_nothing(pack, tmp_path):
    pack("run", "int6-clip-search", check=0)
    for target in ("./nope", "runs/nope/x", "nope.tar.gz"):
        res = pack("verify", target, check=2)
        assert f"{target}: no such file or directory" in res.stderr and "Traceback" not in res.stderr
    res = pack("verify", "int6-clip-serch", check=2)
    assert "did you mean 'int6-clip-search'" in res.stderr
    assert "PASS" in pack("verify", "int6-clip-search", check=0).stdout  # a bare row id
    assert "PASS" in pack("verify", "local-ablation:int6-clip-search", check=0).stdout


def _missing_wire_prompts(home):
    """Point the row's smoke prompts at a file that is not there: the run starts, then errors."""
    p = home / "manifests" / "latent-bridge.yaml"
    text = p.read_text()
    assert "      prompts: synthetic\n" in text
    p.write_text(text.replace("      prompts: synthetic\n", "      prompts: /nonexistent/prompts.jsonl\n", 1))
    return lambda: p.write_text(text)


def test_the_judged_run_is_explicit_per_row_and_scale(pack, home, tmp_path):
    # An errored full-scale run is not hidden by a later smoke run: both are judged.
    pack("run", "wire-compression", "--scale", "full", "--reps", "1", check=2)  # no GSM8K file: ERROR
    pack("run", "wire-compression", check=0)
    res = pack("verify", "--brief", "latent-bridge:wire-compression", check=1)
    lines = [x for x in res.stdout.splitlines() if x.startswith("latent-bridge:wire-compression ")]
    assert len(lines) == 2
    assert any("ERROR" in x and " full " in x for x in lines)
    assert any("PASS" in x and " smoke " in x for x in lines)
    assert "PASS" in pack("verify", "--scale", "smoke", "wire-compression", check=0).stdout
    # A newer errored smoke run: the finished one is judged, and the newer one is named on stderr.
    restore = _missing_wire_prompts(home)
    pack("run", "wire-compression", check=2)
    restore()
    smoke = [p for p in runs_of(tmp_path, "latent-bridge", "wire-compression") if "-smoke-" in p.name]
    older, newer = smoke[-2], smoke[-1]
    res = pack("verify", "--scale", "smoke", "wire-compression", check=0)
    assert "PASS" in res.stdout
    assert f"judged {older.name}, not the newer run {newer.name}: errored:" in res.stderr
    assert "/nonexistent/prompts.jsonl" in res.stderr
    assert f"--run-id {newer.name}" in res.stderr
    res = pack("verify", "--run-id", newer.name, check=1)
    assert "ERROR" in res.stdout and "/nonexistent/prompts.jsonl" in res.stdout
    # The same selection makes the bundle.
    res = pack("bundle", "--scale", "smoke", "wire-compression", "-o", tmp_path / "b.tar.gz", check=0)
    assert "bundled 1 run(s)" in res.stderr and newer.name in res.stderr


def test_unknown_schema_is_that_rows_error(pack, tmp_path):
    pack("run", "int6-clip-search", "wire-compression", check=0)
    [run] = runs_of(tmp_path, "local-ablation", "int6-clip-search")
    rec = json.loads((run / "run.json").read_text())
    rec["schema"] = "pack.run/9"
    (run / "run.json").write_text(json.dumps(rec))
    res = pack("verify", "--brief", check=1)
    line = next(x for x in res.stdout.splitlines() if "int6-clip-search" in x)
    assert "ERROR" in line and "schema 'pack.run/9'" in line and "upgrade pack" in line
    assert any("wire-compression" in x and "PASS" in x for x in res.stdout.splitlines())
