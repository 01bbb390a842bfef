"""The spine end to end through the real CLI: run, verify, bless, tamper, bundle, resume, refuse."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, write


def latest(runs: Path, paper: str, row: str) -> Path:
    return sorted((runs / paper / row).iterdir())[-1]


def test_cpu_rows_run_and_pass(pack, tmp_path):
    pack("run", "wire-compression", "int6-clip-search", check=0)
    res = pack("verify", check=0)
    assert "latent-bridge:wire-compression   PASS" in res.stdout
    assert "local-ablation:int6-clip-search  PASS" in res.stdout
    # The PR's own figures are shown, explained, as not applicable to the synthetic smoke model.
    assert "NOT-APPLICABLE val_bpb_delta" in res.stdout and "needs validation data" in res.stdout
    assert "paper value 11000000" in res.stdout
    verdicts = json.loads(pack("verify", "--json", check=0).stdout)
    assert verdicts["summary"]["PASS"] == 2
    assert res.stderr == ""  # results on stdout only


def test_changed_byte_fails_naming_the_file(pack, tmp_path):
    pack("run", "wire-compression", check=0)
    run = latest(tmp_path / "runs", "latent-bridge", "wire-compression")
    art = run / "reps" / "rep-001" / "wire_table.json"
    data = bytearray(art.read_bytes())
    data[10] ^= 0x01
    art.write_bytes(bytes(data))
    res = pack("verify", check=1)
    assert (
        "FAIL" in res.stdout and "rep-001/wire_table.json" in res.stdout and "checksum mismatch" in res.stdout
    )


def test_truncated_run_json_is_one_sentence(pack, tmp_path):
    pack("run", "int6-clip-search", "wire-compression", check=0)
    run = latest(tmp_path / "runs", "local-ablation", "int6-clip-search")
    (run / "run.json").write_text('{"status": "compl')
    res = pack("verify", "--brief")  # that row is an ERROR naming the file; the other row is still judged
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    line = next(x for x in res.stdout.splitlines() if "int6-clip-search" in x)
    assert "ERROR" in line and "run.json: truncated or not JSON" in line
    assert any("wire-compression" in x and "PASS" in x for x in res.stdout.splitlines())
    (run / "run.json").unlink()
    res = pack("verify", str(run / "reps" / "rep-000"))
    assert res.returncode != 0 and "Traceback" not in res.stderr


def test_bless_then_verify_uses_new_expectation(pack, home, tmp_path):
    pack("run", "int6-clip-search", "--reps", "1", check=0)
    run = latest(tmp_path / "runs", "local-ablation", "int6-clip-search")
    before = pack("verify", str(run), check=0)
    assert "expectation holds at scale full" in before.stdout  # paper figures: off scope, explained
    pack("bless", run, "--note", "test", check=0)
    text = (home / "expected" / "local-ablation" / "int6-clip-search.yaml").read_text()
    assert (
        f"blessed_run: {run.name}" in text and "seed: 003_4d490d33ddfc5a2e.txt" in text
    )  # paper values kept
    after = pack("verify", str(run), check=0)
    assert "PASS" in after.stdout


def test_bundle_roundtrip_and_tamper(pack, tmp_path):
    pack("run", "wire-compression", "int6-clip-search", check=0)
    out = tmp_path / "b.tar.gz"
    pack("bundle", "-o", out, check=0)
    res = pack("verify", out, check=0)
    assert res.stdout.count("PASS") >= 2
    # Rewrite one member with a flipped byte: verify names it.
    tampered = tmp_path / "t.tar.gz"
    with tarfile.open(out) as src, tarfile.open(tampered, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name.endswith("rep-000/rep.json") and "wire-compression" in m.name:
                data = data.replace(b'"index": 0', b'"index": 7')
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    res = pack("verify", tampered)
    assert res.returncode == 1 and "rep-000/rep.json" in res.stdout and "checksum mismatch" in res.stdout
    assert "PASS" in res.stdout  # the other, intact row is still judged


def test_bundle_with_parent_paths_is_refused(pack, tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"pwn"))
    res = pack("verify", evil)
    assert res.returncode == 2 and "'..'" in res.stderr and not (tmp_path / "outside.txt").exists()


GPU_ROW = """
paper: gpupaper
title: A GPU-only paper
source: test
rows:
  - id: gpu-only
    cell: "Table 9"
    experiment: command
    target: {hardware: g6e.xlarge, image: l40s}
    params: {executable: "true"}
"""


def test_gpu_row_refused_on_cpu_and_nothing_written(pack, home, tmp_path):
    write(home / "manifests" / "gpupaper.yaml", GPU_ROW)
    res = pack("run", "gpu-only", env={"PACK_HW": "cpu"})
    if "no CUDA GPU" not in res.stderr:  # this test only means something on a machine without a GPU
        import pytest

        pytest.skip("a GPU is present")
    assert res.returncode == 2 and "g6e.xlarge" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists()


def command_manifest(home: Path, script: Path, reps: int = 3) -> None:
    write(
        home / "manifests" / "cmdpaper.yaml",
        f"""
        paper: cmdpaper
        title: Command rows
        source: test
        rows:
          - id: ab
            cell: "Table 2"
            experiment: command
            target: {{hardware: cpu}}
            reps: {reps}
            params:
              script: {script.name}
              repo: {script.parent}
              interpreter: python3
              arms:
                baseline: {{}}
                compress: {{args: [--compress]}}
                broken: {{args: [--crash]}}
                mute: {{args: [--mute]}}
              parsers:
                - name: decode
                  regex: 'Decode-only: prefill (?P<prefill_ms>[\\d.]+) ms, (?P<tok_s>[\\d.]+) tok/s'
                - name: ppl-json
                  json_prefix: "[PPL-JSON]"
                  fields: {{ppl: ppl, nll: nll}}
            metrics:
              "*.tok_s": {{tolerance: {{kind: rel, value: 0.05}}}}
              "*.ppl": {{tolerance: {{kind: decimals, places: 4}}}}
        """,
    )


def test_command_arms_parsers_errors(pack, home, tmp_path, author_script):
    command_manifest(home, author_script, reps=2)
    res = pack("run", "ab", check=1)  # two arms errored: pack run says so, one line per row at the end
    assert res.stdout.splitlines()[-2] == "pack run: 1 of 1 row(s) errored, 0 skipped:"
    assert res.stdout.splitlines()[-1].startswith("  cmdpaper:ab  error     broken: exited with code 3")
    run = latest(tmp_path / "runs", "cmdpaper", "ab")
    rec = json.loads((run / "run.json").read_text())
    m = rec["metrics"]
    assert m["baseline.tok_s"]["values"] == [40.0, 40.0] and m["compress.tok_s"]["values"] == [38.5, 38.5]
    assert m["baseline.ppl"]["values"] == [6.1234, 6.1234] and m["baseline.prefill_ms"]["mean"] == 12.3
    assert "exited with code 3" in rec["errors"]["broken"] and "out of memory" in rec["errors"]["broken"]
    assert "no output matched parser(s) decode, ppl-json" in rec["errors"]["mute"]
    prov = rec["experiment_provenance"]["command"]
    assert len(prov["sha256"]) == 64 and "engine 1.2.3" in prov["version_text"]
    assert (run / "reps" / "rep-000" / "baseline.stdout.txt").read_text().startswith("Decode-only")
    assert m["baseline.peak_rss_mb"]["mean"] > 1
    write(
        home / "expected" / "cmdpaper" / "ab.yaml",
        """
        paper: cmdpaper
        row: ab
        expectations:
          - {metric: baseline.tok_s, value: 40.0, source: {seed: x, table: t}}
          - {metric: broken.tok_s, value: 40.0, source: {seed: x, table: t}}
          - {metric: mute.ppl, value: 6.1234, source: {seed: x, table: t}}
        """,
    )
    res = pack("verify", "cmdpaper")
    assert res.returncode == 1
    assert "PASS           baseline.tok_s" in res.stdout
    assert "ERROR          broken.tok_s" in res.stdout and "out of memory" in res.stdout
    assert "ERROR          mute.ppl" in res.stdout and "decode, ppl-json" in res.stdout


def test_missing_executable_is_error_per_arm(pack, home, tmp_path, author_script):
    command_manifest(home, author_script, reps=1)
    text = (
        (home / "manifests" / "cmdpaper.yaml")
        .read_text()
        .replace(f"script: {author_script.name}", "script: gone.py")
    )
    (home / "manifests" / "cmdpaper.yaml").write_text(text)
    pack("run", "ab", check=1)
    rec = json.loads((latest(tmp_path / "runs", "cmdpaper", "ab") / "run.json").read_text())
    assert "script 'gone.py' not found" in rec["errors"]["baseline"]


def test_sigkill_then_resume_keeps_finished_reps(pack, home, tmp_path, author_script):
    command_manifest(home, author_script, reps=6)
    env = dict(os.environ, PYTHONPATH=str(REPO), ENGINE_SLEEP="1.0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pack", "run", "ab"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    row_dir = tmp_path / "runs" / "cmdpaper" / "ab"
    deadline = time.time() + 240  # generous: the machine may be busy
    while time.time() < deadline:  # wait until two repetitions are finished
        if row_dir.exists() and len(list(row_dir.glob("*/reps/rep-00[0-9]"))) >= 2:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the run did not finish two repetitions in 240 s")
    # While it runs: a second process is refused (the lock), and verify calls the run unfinished.
    res = pack("run", "ab", "--resume")
    assert res.returncode == 2 and "is being run by another pack process (pid" in res.stderr, res.stderr
    res = pack("verify", "cmdpaper:ab")
    assert res.returncode == 1 and "unfinished: a pack process (pid" in res.stdout, res.stdout
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run = sorted(row_dir.iterdir())[-1]
    finished = sorted(p.name for p in (run / "reps").glob("rep-*"))
    assert 2 <= len(finished) < 6, finished
    res = pack("verify", run)  # killed: unfinished, with the command that finishes it — not tampering
    assert res.returncode == 1 and "checksum" not in res.stdout
    assert (
        "unfinished: the run stopped before it ended; resume it with `pack run cmdpaper:ab --scale smoke "
        "--resume`" in res.stdout
    )
    stamps = {p: (run / "reps" / p / "rep.json").stat().st_mtime_ns for p in finished}
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    res = pack("run", "ab", "--resume", env={"ENGINE_SLEEP": "0"}, check=1)  # two arms always error
    assert "kept (checksums verified)" in res.stderr
    rec = json.loads((run / "run.json").read_text())
    assert rec["status"] == "complete" and rec["resumed"] and len(rec["reps"]) == 6
    assert [r["kept"] for r in rec["reps"]][: len(finished)] == [True] * len(finished)
    for p, ns in stamps.items():  # finished reps were not redone
        assert (run / "reps" / p / "rep.json").stat().st_mtime_ns == ns
    assert len(list(row_dir.iterdir())) == 1
    res = pack("verify", run)  # intact: checksums written after resume; the arms' errors are the verdict
    assert "unfinished" not in res.stdout and "checksum" not in res.stdout
    assert not [p for p in (run / "reps").iterdir() if p.name.endswith(".tmp")]


def test_plan_cost_and_refusal(pack, home):
    write(home / "manifests" / "gpupaper.yaml", GPU_ROW)
    res = pack("plan", "gpupaper", "--hw", "g6e.xlarge", check=0)
    assert "1.861 USD/h" in res.stdout and "gpu-only" in res.stdout
    res = pack("plan", "gpupaper", "--hw", "cpu")
    assert res.returncode == 2 and "refused" in res.stdout and "needs 1 GPU(s), has 0" in res.stdout
    res = pack("plan", "gpupaper", "--hw", "g6e.xlarg")
    assert res.returncode == 2 and "did you mean 'g6e.xlarge'" in res.stderr


def test_env_fingerprint_and_diff(pack, tmp_path):
    fp = json.loads(pack("env", "--no-torch", check=0).stdout)
    for key in ("gpu", "cuda", "packages", "pip_freeze", "pack", "cpu", "python", "container", "env"):
        assert key in fp
    assert fp["gpu"]["driver"] == "unavailable" or fp["gpu"]["count"] > 0
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps(fp))
    fp["packages"]["torch"] = "9.9.9"
    b.write_text(json.dumps(fp))
    res = pack("env", "--diff", a, b, check=0)
    assert "packages.torch" in res.stdout and "9.9.9" in res.stdout


def test_report_files(pack, tmp_path):
    pack("run", "wire-compression", check=0)
    pack("report", "--out", tmp_path / "rep", check=0)
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "data:image/png;base64," in html and "Paper vs reproduced" in html
    import xml.etree.ElementTree as ET

    root = ET.parse(tmp_path / "rep" / "junit.xml").getroot()
    assert root.tag == "testsuites" and int(root[0].get("tests")) >= 17 and root[0].get("failures") == "0"
    assert "| Metric | Verdict |" in (tmp_path / "rep" / "report.md").read_text()


def test_cpu_row_reference_holds_on_any_host(pack):
    """Blessed smoke values of a CPU-target row are not tied to the host they were blessed on."""
    pack("run", "int6-clip-search", env={"PACK_HW": "g6e.xlarge"}, check=0)
    res = pack("verify", "local-ablation", check=0)
    assert "PASS" in res.stdout and "g6e.xlarge" in res.stdout


def test_bad_params_are_refused_before_anything_runs(pack, home, tmp_path):
    original = (home / "manifests" / "latent-bridge.yaml").read_text()
    text = original.replace("formats: [fp16, int8, int6, int4]", "formats: [fp16, int3]", 1)
    (home / "manifests" / "latent-bridge.yaml").write_text(text)
    res = pack("run", "wire-compression")
    assert res.returncode == 2 and "unknown format 'int3'" in res.stderr and "Traceback" not in res.stderr
    assert "latent-bridge.yaml:" in res.stderr  # file:line of the param, from the row's Params model
    assert not (tmp_path / "runs" / "latent-bridge").exists()


def test_bad_input_inside_a_rep_is_recorded_not_left_running(pack, home, tmp_path):
    text = (home / "manifests" / "latent-bridge.yaml").read_text()
    # Params are checked when the manifest loads; a missing input file is only found inside the rep.
    text = text.replace("      prompts: synthetic\n", "      prompts: data/absent_gsm8k.jsonl\n", 1)
    (home / "manifests" / "latent-bridge.yaml").write_text(text)
    res = pack("run", "wire-compression")
    assert res.returncode == 2 and "absent_gsm8k.jsonl (params.prompts) not found" in res.stderr
    assert "Traceback" not in res.stderr
    run = latest(tmp_path / "runs", "latent-bridge", "wire-compression")
    rec = json.loads((run / "run.json").read_text())
    assert rec["status"] == "error" and "absent_gsm8k.jsonl" in rec["errors"]["__run__"]
    assert "ERROR" in pack("verify", run).stdout
