"""Run-folder faults judged in process: a verdict comes from the per-repetition evidence, an unfinished
run is ERROR (resume it), one damaged run.json is that row's ERROR while the other rows are judged."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest

from pack import paths
from pack.verify import verify_run
from tests.conftest import REPO, invoke_cli


def _resum(d: Path, top: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(d).as_posix()}\n"
        for p in sorted(d.rglob("*"))
        if p.is_file() and p != d / "SHA256SUMS" and p.name != ".pack.lock"
    ]
    (d / "SHA256SUMS").write_text("".join(lines))


def rehash(run: Path) -> None:
    """What a careful forger does: re-hash every repetition's and the run's SHA256SUMS."""
    for rep in (run / "reps").iterdir():
        _resum(rep, run)
    _resum(run, run)


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> tuple[Path, Path]:
    """(home, run dir) of one real two-repetition wire-compression smoke run."""
    base = tmp_path_factory.mktemp("rt")
    home = base / "home"
    shutil.copytree(REPO / "manifests", home / "manifests")
    shutil.copytree(REPO / "expected", home / "expected")
    env = {"PACK_HOME": str(home), "PACK_RUNS": str(base / "runs")}
    res = invoke_cli(["run", "wire-compression", "--reps", "2"], cwd=base, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    (run,) = (base / "runs" / "latent-bridge" / "wire-compression").iterdir()
    return home, run


@pytest.fixture
def run(one_run, tmp_path):
    home, src = one_run
    dst = tmp_path / "runs" / "latent-bridge" / "wire-compression" / src.name
    shutil.copytree(src, dst)
    with paths.using_root(home):
        yield dst


def judge(run: Path):
    return verify_run(run)


def test_intact_run_passes(run):
    assert judge(run).verdict == "PASS"


@pytest.mark.parametrize("where", ["rep", "run"])
def test_rehashed_edit_that_disagrees_with_the_repetitions_fails(run, where):
    if where == "rep":  # a repetition's value changed, run.json left showing the expected one
        p = run / "reps" / "rep-000" / "rep.json"
        doc = json.loads(p.read_text())
        doc["result"]["metrics"]["text_bytes"] = 999.0
        p.write_text(json.dumps(doc))
    else:  # run.json's summary changed, the repetitions left as they were
        doc = json.loads((run / "run.json").read_text())
        m = doc["metrics"]["text_bytes"]
        m.update(values=[1.0, 1.0], mean=1.0, min=1.0, max=1.0, median=1.0)
        (run / "run.json").write_text(json.dumps(doc))
    rehash(run)
    v = judge(run)
    assert v.verdict == "FAIL" and "text_bytes" in v.why and "per-repetition" in v.why


def test_unfinished_run_is_error_resume_it_not_tampering(run):
    doc = json.loads((run / "run.json").read_text())
    doc.update(status="running", finished_at=None)
    (run / "run.json").write_text(json.dumps(doc))
    (run / "SHA256SUMS").unlink()
    v = judge(run)
    assert v.verdict == "ERROR" and "resume" in v.why


def test_killed_before_the_checksum_file_is_error_not_pass(run):
    (run / "SHA256SUMS").unlink()  # status already 'complete': the kill came just before SHA256SUMS
    v = judge(run)
    assert v.verdict == "ERROR" and "resume" in v.why


def test_damaged_run_json_is_that_rows_error_and_others_are_judged(run, tmp_path):
    other = run.parent.parent / "other-row" / "20260101T000000Z-smoke-deadbeef"
    shutil.copytree(run, other)
    (other / "run.json").write_text('{"status": "compl')
    bad = judge(other)
    assert bad.verdict == "ERROR" and "truncated or not JSON" in bad.why and bad.row == "other-row"
    assert judge(run).verdict == "PASS"


def test_deleted_rep_and_extra_file_fail(run):
    shutil.rmtree(run / "reps" / "rep-001")
    assert judge(run).verdict == "FAIL"


def test_unlisted_temp_looking_file_fails(run):
    (run / "reps" / ".rep-009.tmp").mkdir()
    (run / "reps" / ".rep-009.tmp" / "rep.json").write_text("{}")
    v = judge(run)
    assert v.verdict == "FAIL" and ".rep-009.tmp" in v.why


def test_every_json_output_is_valid_json_even_with_nan_repetitions(run, capsys, monkeypatch):
    """A run whose repetitions are NaN/inf (consistently recorded): `--json` of verify, diff and status
    parse under a strict parser (no bare NaN), and the non-finite values are null."""
    from pack import cli
    from pack.results import RepResult
    from pack.rundir import aggregate

    reps = []
    for i, rp in enumerate(sorted((run / "reps").glob("rep-*"))):
        doc = json.loads((rp / "rep.json").read_text())
        doc["result"]["metrics"]["text_bytes"] = [math.nan, math.inf][i % 2]
        (rp / "rep.json").write_text(json.dumps(doc))
        reps.append(RepResult.from_json(doc["result"]))
    rec = json.loads((run / "run.json").read_text())
    rec["metrics"] = aggregate(reps, None)
    (run / "run.json").write_text(json.dumps(rec))
    rehash(run)
    monkeypatch.setenv("PACK_RUNS", str(run.parents[2]))

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in --json output"))

    for args in (
        ["verify", str(run), "--json"],
        ["diff", str(run), str(run), "--json"],
        ["status", "--json"],
    ):
        try:
            cli.main(args)
        except SystemExit:
            pass
        out = capsys.readouterr()
        assert out.out.strip(), f"{args}: {out.err}"
        strict(out.out)


def test_json_text_writes_non_finite_as_null():
    from pack.fsio import json_text

    assert json.loads(json_text({"a": [math.nan, math.inf, 1.5], "p": Path("/x")})) == {
        "a": [None, None, 1.5],
        "p": "/x",
    }


def test_no_command_prints_json_another_way():
    """The class, not the example: every --json printer goes through fsio.json_text."""
    for f in ("pack/cli.py", "pack/launch/cli.py", "pack/status.py"):
        assert "json.dumps(" not in (REPO / f).read_text(), f


@pytest.mark.parametrize("note", ["errors", "contamination", "not_applicable"])
def test_a_note_dropped_from_run_json_fails(run, note):
    """A repetition reported contamination (or an error, or n/a); run.json edited to drop it, re-hashed."""
    p = run / "reps" / "rep-000" / "rep.json"
    doc = json.loads(p.read_text())
    value = {
        "errors": {"compress": "boom"},
        "contamination": ["another process on the GPU"],
        "not_applicable": {"compress": "needs a GPU"},
    }[note]
    doc["result"][note] = value
    p.write_text(json.dumps(doc))
    rehash(run)
    v = judge(run)
    assert v.verdict == "FAIL" and "does not carry" in v.why


@pytest.mark.parametrize("consistent", [False, True])
def test_an_int_too_large_for_a_float_is_a_verdict_not_a_crash(run, consistent):
    from pack.results import RepResult
    from pack.rundir import aggregate

    p = run / "reps" / "rep-000" / "rep.json"
    doc = json.loads(p.read_text())
    doc["result"]["metrics"]["text_bytes"] = 10**400
    p.write_text(json.dumps(doc))
    if consistent:
        reps = [
            RepResult.from_json(json.loads((r / "rep.json").read_text())["result"])
            for r in sorted((run / "reps").glob("rep-*"))
        ]
        rec = json.loads((run / "run.json").read_text())
        rec["metrics"] = aggregate(reps, None)
        (run / "run.json").write_text(json.dumps(rec))
    rehash(run)
    assert judge(run).verdict in ("FAIL", "ERROR")


def test_a_rehashed_forgery_cannot_be_blessed_or_bundled(run, tmp_path, capsys):
    """bless writes expected/ and bundle ships a run: both check run.json against its repetitions too."""
    from pack import cli

    p = run / "reps" / "rep-000" / "rep.json"
    doc = json.loads(p.read_text())
    doc["result"]["metrics"]["text_bytes"] = 999.0
    p.write_text(json.dumps(doc))
    rehash(run)
    for args in (["bless", str(run)], ["bundle", str(run), "-o", str(tmp_path / "b.tar.gz")]):
        with pytest.raises(SystemExit) as e:
            cli.main(args)
        err = capsys.readouterr().err
        assert e.value.code != 0 and "per-repetition" in err, (args, err)
    assert not (tmp_path / "b.tar.gz").exists()
