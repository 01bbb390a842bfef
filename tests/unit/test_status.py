"""`pack status`: last finished run per row and scale, its verdict now, stale or missing, and why."""

from __future__ import annotations

import json
import os
import time

from click.testing import CliRunner

from pack import __version__, fsio
from pack.cli import cli
from pack.manifest import find_row
from pack.results import RepResult
from pack.rundir import RunDir, RunRecord, aggregate
from tests.conftest import invoke_cli


def reps_of(metrics: dict) -> list[RepResult]:
    n = max(len(v) for v in metrics.values())
    return [RepResult(metrics={k: v[i] for k, v in metrics.items() if i < len(v)}) for i in range(n)]


def record(run_id, params_hash="0" * 16, status="complete", metrics=None, **extra) -> dict:
    """A valid run.json (rundir.RunRecord) for row local-ablation:int6-clip-search at smoke scale, whose
    metrics are the aggregate of `metrics`' per-repetition values (write_reps writes those)."""
    reps = reps_of(metrics or {"n_params": [73984]})
    timings = [
        {"started_at": "2026-01-01T00:00:00+00:00", "wall_s": 0.1, "index": i, "kept": False}
        for i in range(len(reps))
    ]
    return RunRecord(
        paper="local-ablation",
        row="int6-clip-search",
        run_id=run_id,
        cell="c",
        experiment="e",
        scale="smoke",
        params={},
        params_hash=params_hash,
        target={},
        hardware="cpu",
        gpu_models=[],
        seed=0,
        reps_planned=len(reps),
        max_runtime_s=60,
        status=status,
        started_at="2026-01-01T00:00:00+00:00",
        resumed=False,
        finished_at="2999-01-01T00:00:00+00:00",
        reps=timings,
        metrics=aggregate(reps, None),
        **extra,
    ).as_dict()


def write_reps(d, metrics=None) -> None:
    """The per-repetition files a record's aggregates are recomputed from (pack verify checks they agree)."""
    for i, rep in enumerate(reps_of(metrics or {"n_params": [73984]})):
        rep_dir = RunDir(d).rep_dir(i)
        fsio.write_json_atomic(rep_dir / "rep.json", {"index": i, "timing": {}, "result": rep.to_json()})
        fsio.write_sums(rep_dir)


def finished_run(runs, run_id, params_hash, pack_version=__version__, status="complete"):
    d = runs / "local-ablation" / "int6-clip-search" / run_id
    d.mkdir(parents=True)
    write_reps(d)
    fsio.write_json_atomic(d / "run.json", record(run_id, params_hash, status))
    fsio.write_json_atomic(d / "env.json", {"pack": {"version": pack_version}})
    fsio.write_sums(d)
    return d


def rows_of(output: str) -> dict:
    return {(r["row"], r["scale"]): r for r in json.loads(output)["rows"]}


def test_status_up_to_date_stale_and_missing(home, tmp_path):
    runs = tmp_path / "runs"
    good_hash = find_row("local-ablation:int6-clip-search")[1].at("smoke").params_hash()
    finished_run(runs, "20260101T000000Z-smoke-aaaa", good_hash)
    res = CliRunner().invoke(cli, ["status", "local-ablation", "--json"])
    rows = rows_of(res.output)
    now = rows[("int6-clip-search", "smoke")]
    assert (
        now["run_id"] == "20260101T000000Z-smoke-aaaa"
        and now["stale"] == []
        and now["verdict"] in ("PASS", "FAIL", "MISSING")
        and now["basis"]
    )
    assert (
        rows[("int6-clip-search", "full")]["run_id"] is None
        and rows[("int6-clip-search", "full")]["verdict"] is None
    )
    assert rows[("ablation-200step", "smoke")]["run_id"] is None
    # A newer unfinished run does not count; a newer finished one with other params / pack is stale.
    finished_run(runs, "20260102T000000Z-smoke-bbbb", good_hash, status="running")
    assert (
        rows_of(CliRunner().invoke(cli, ["status", "local-ablation", "--json"]).output)[
            ("int6-clip-search", "smoke")
        ]["run_id"]
        == "20260101T000000Z-smoke-aaaa"
    )
    finished_run(runs, "20260103T000000Z-smoke-cccc", "0" * 16, pack_version="0.0.1")
    stale = rows_of(CliRunner().invoke(cli, ["status", "local-ablation", "--json"]).output)[
        ("int6-clip-search", "smoke")
    ]["stale"]
    assert any("params changed" in s for s in stale) and any(
        "pack version changed (0.0.1" in s for s in stale
    )
    text = CliRunner().invoke(cli, ["status", "local-ablation"]).output
    assert "stale: params changed" in text and "missing" in text


def test_expectation_changed_after_the_run_is_stale(home, tmp_path):
    good_hash = find_row("local-ablation:int6-clip-search")[1].at("smoke").params_hash()
    d = finished_run(tmp_path / "runs", "20260101T000000Z-smoke-aaaa", good_hash)
    rec = json.loads((d / "run.json").read_text())
    exp = home / "expected" / "local-ablation" / "int6-clip-search.yaml"
    rec["expected_sha256"] = fsio.sha256_file(exp)
    fsio.write_json_atomic(d / "run.json", rec)
    fsio.write_sums(d)
    assert (
        rows_of(CliRunner().invoke(cli, ["status", "local-ablation", "--json"]).output)[
            ("int6-clip-search", "smoke")
        ]["stale"]
        == []
    )
    exp.write_text(exp.read_text() + "\n")
    stale = rows_of(CliRunner().invoke(cli, ["status", "local-ablation", "--json"]).output)[
        ("int6-clip-search", "smoke")
    ]["stale"]
    assert stale == ["expectation file changed since the run (int6-clip-search.yaml, sha256 differs)"]
    # Without a recorded hash, the file time is the evidence, and the sentence says so.
    rec.pop("expected_sha256")
    rec["finished_at"] = "2000-01-01T00:00:00+00:00"
    fsio.write_json_atomic(d / "run.json", rec)
    fsio.write_sums(d)
    os.utime(exp, (time.time(), time.time()))
    stale = rows_of(CliRunner().invoke(cli, ["status", "local-ablation", "--json"]).output)[
        ("int6-clip-search", "smoke")
    ]["stale"]
    assert stale == ["expectation file modified after the run (int6-clip-search.yaml, by file time)"]


def test_resume_of_an_up_to_date_run_does_nothing_and_says_so(home, tmp_path):
    """`pack run --resume` on a complete, intact run with the same params, reps, seed and pack: nothing
    to do."""
    rrow = find_row("local-ablation:int6-clip-search")[1].at("smoke")
    runs = tmp_path / "runs"
    d = finished_run(runs, "20260101T000000Z-smoke-aaaa", rrow.params_hash())
    rec = json.loads((d / "run.json").read_text())
    rec["reps_planned"] = rrow.reps
    fsio.write_json_atomic(d / "run.json", rec)
    fsio.write_sums(d)
    res = CliRunner().invoke(cli, ["run", "local-ablation:int6-clip-search", "--resume", "--out", str(runs)])
    assert res.exit_code == 0, res.output
    assert "up to date (20260101T000000Z-smoke-aaaa is complete" in res.output and "--force" in res.output
    assert sorted(p.name for p in d.parent.iterdir()) == [d.name]  # nothing new was started
    # stdout apart from stderr on every click the pack allows (8.1's CliRunner mixes them by default)
    res = invoke_cli(["run", "local-ablation:int6-clip-search", "--resume", "--out", runs, "--json"])
    assert json.loads(res.stdout) == [
        {
            "row": "local-ablation:int6-clip-search",
            "status": "complete",
            "run_dir": str(d),
            "up_to_date": True,
        }
    ]
    from pack.status import up_to_date

    assert up_to_date(d.parent, rrow, seed=0) == d
    assert up_to_date(d.parent, rrow, seed=1) is None  # another seed is another run
    (d / "run.log").write_text("appended after the run\n")  # an unlisted file: not intact any more
    assert up_to_date(d.parent, rrow, seed=0) is None
    rows = rows_of(CliRunner().invoke(cli, ["status", "local-ablation:int6-clip-search", "--json"]).output)
    assert set(rows) == {("int6-clip-search", "smoke"), ("int6-clip-search", "full")}


def test_status_and_verify_pick_the_same_newest_finished_run(home, tmp_path):
    """One definition of 'finished' (selection.state_of): a newer run whose record says complete but
    that was killed before its seal (no SHA256SUMS), or whose folder a pack process still holds, is
    not the last finished run for `pack status` either — the run `pack verify` judges is the one shown."""
    from pack import selection
    from pack.run_lock import hold

    runs = tmp_path / "runs"
    good_hash = find_row("local-ablation:int6-clip-search")[1].at("smoke").params_hash()
    sealed = finished_run(runs, "20260101T000000Z-smoke-aaaa", good_hash)
    unsealed = finished_run(runs, "20260102T000000Z-smoke-bbbb", good_hash)
    (unsealed / fsio.SUMS_NAME).unlink()  # killed after run.json said complete, before the seal
    row_dir = sealed.parent

    def shown() -> str:
        out = CliRunner().invoke(cli, ["status", "local-ablation:int6-clip-search", "--json"]).output
        return rows_of(out)[("int6-clip-search", "smoke")]["run_id"]

    judged = selection.select(row_dir, scale="smoke").runs
    assert [rd.name for rd in judged] == [sealed.name] == [shown()]
    held = finished_run(runs, "20260103T000000Z-smoke-cccc", good_hash)
    with hold(RunDir(held).lock_path, held):
        assert selection.latest_finished(row_dir, "smoke").path == sealed
        assert shown() == sealed.name
    assert shown() == held.name  # released: now the newest finished run


def test_missing_names_the_newest_unfinished_run(home, tmp_path):
    good_hash = find_row("local-ablation:int6-clip-search")[1].at("smoke").params_hash()
    d = finished_run(tmp_path / "runs", "20260101T000000Z-smoke-aaaa", good_hash, status="running")
    out = CliRunner().invoke(cli, ["status", "local-ablation:int6-clip-search", "--json"]).output
    row = rows_of(out)[("int6-clip-search", "smoke")]
    assert row["run_id"] is None and row["verdict"] is None
    assert f"no finished smoke run under {d.parent} (newest, {d.name}: unfinished:" in row["why"]
    assert "--resume" in row["why"]
