"""Crash consistency: SIGKILL at every durable step of a run (fsio.fault_point), then verify and resume.

Each kill happens in a forked child (the manifests are parsed once, in this process), at step k of the
run's write sequence, for every k. After each kill: the row never verifies as PASS unless the run had
sealed itself (its checksum file written), it never reads as tampering (FAIL), and `--resume` finishes
it — kept repetitions untouched — into a run that verifies PASS.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal

import pytest

from pack import fsio
from pack.manifest import find_row
from pack.run import execute
from pack.rundir import RunStatus, all_runs
from pack.selection import select
from pack.verify import verify_run

ROW = "int6-clip-search"


def _run_in_child(rrow, manifest, runs, env: dict, resume: bool = False) -> int:
    """Fork; the child runs the row with `env` set and exits; return the child's wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.environ.update(env)
            fsio._fault_count = 0
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            execute(manifest, rrow, runs_root=runs, resume=resume)
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


@pytest.fixture
def row(home):
    m, r = find_row(ROW)
    return m, dataclasses.replace(r.at("smoke"), reps=2)


def test_trace_lists_the_write_sequence(row, tmp_path):
    m, rr = row
    trace = tmp_path / "trace.txt"
    status = _run_in_child(rr, m, tmp_path / "runs", {"PACK_FAULT_TRACE": str(trace)})
    assert os.waitstatus_to_exitcode(status) == 0
    labels = [line.split("\t", 1)[1] for line in trace.read_text().splitlines()]
    assert labels[:2] == ["before replacing run.json", "after replacing run.json"]  # the record comes first
    assert labels[-1] == "after replacing SHA256SUMS" and labels[-3] == "after replacing run.json"
    assert sum("renaming rep-" in x for x in labels) == 2


def test_kill_at_every_step_then_resume(row, tmp_path, capsys):
    m, rr = row
    trace = tmp_path / "trace.txt"
    _run_in_child(rr, m, tmp_path / "probe", {"PACK_FAULT_TRACE": str(trace)})
    steps = trace.read_text().splitlines()
    assert len(steps) >= 20
    for k in range(1, len(steps) + 1):
        runs = tmp_path / f"runs-{k}"
        status = _run_in_child(rr, m, runs, {"PACK_FAULT_AT": str(k)})
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (k, steps[k - 1])
        killed = all_runs(runs)
        sealed = k == len(steps)  # killed right after the checksum file: the run had ended
        for rd in killed:
            v = verify_run(rd.path)
            assert v.verdict == ("PASS" if sealed else "ERROR"), (k, steps[k - 1], v.verdict, v.why)
            if not sealed:
                assert v.why.startswith("unfinished:") and "--resume" in v.why, (k, v.why)
        kept = {p: p.stat().st_mtime_ns for rd in killed for p in rd.reps_dir.glob("rep-*/rep.json")}
        execute(m, rr, runs_root=runs, resume=True)
        sel = select(runs)
        assert len(sel.runs) == 1 and sel.notes == [], (k, sel.notes)
        rd = sel.runs[0]
        assert verify_run(rd.path).verdict == "PASS", (k, steps[k - 1])
        assert rd.record.status is RunStatus.complete and len(rd.record.reps) == 2
        if not sealed:  # resume continued the killed folder (a sealed one is done: resume starts anew)
            assert [x.path for x in killed] in ([], [rd.path]), (k, killed)
        for p, ns in kept.items():  # finished repetitions were kept, not redone
            assert p.stat().st_mtime_ns == ns, (k, p)
        assert not rd.partial_reps() and not rd.stale_temp_files()
    capsys.readouterr()


def _steps(trace) -> list[str]:
    return [line.split("\t", 1)[1] for line in trace.read_text().splitlines()]


def test_kill_at_every_step_of_a_resume_of_an_interrupted_run(row, tmp_path):
    """Ctrl-C after repetition 1 (status 'interrupted', sealed), then a resume killed at each of its steps:
    the old seal must never make a half-resumed run read as tampered, and a last resume finishes it."""
    m, rr = row
    trace = tmp_path / "trace.txt"
    _run_in_child(rr, m, tmp_path / "probe", {"PACK_FAULT_TRACE": str(trace)})
    at = _steps(trace).index("after renaming rep-000 into place") + 1
    base = tmp_path / "base"
    status = _run_in_child(rr, m, base, {"PACK_FAULT_AT": str(at), "PACK_FAULT_SIGNAL": "INT"})
    assert os.waitstatus_to_exitcode(status) == 3  # KeyboardInterrupt, after the run recorded it
    [interrupted] = all_runs(base)
    assert interrupted.record.status is RunStatus.interrupted and interrupted.is_sealed()
    assert verify_run(interrupted.path).why.startswith("unfinished: interrupted")
    rtrace = tmp_path / "rtrace.txt"
    shutil.copytree(base, tmp_path / "rprobe")
    _run_in_child(rr, m, tmp_path / "rprobe", {"PACK_FAULT_TRACE": str(rtrace)}, resume=True)
    steps = _steps(rtrace)
    assert steps[0] == "after unsealing the resumed run"
    for k in range(1, len(steps) + 1):
        runs = tmp_path / f"r-{k}"
        shutil.copytree(base, runs)
        status = _run_in_child(rr, m, runs, {"PACK_FAULT_AT": str(k)}, resume=True)
        assert os.WIFSIGNALED(status), (k, steps[k - 1])
        [rd] = all_runs(runs)
        v = verify_run(rd.path)
        if k == len(steps):
            assert v.verdict == "PASS", (k, v.why)
            continue
        assert v.verdict == "ERROR" and v.why.startswith("unfinished:"), (k, steps[k - 1], v.verdict, v.why)
        kept = (rd.rep_dir(0) / "rep.json").stat().st_mtime_ns
        execute(m, rr, runs_root=runs, resume=True)
        assert [x.path for x in all_runs(runs)] == [rd.path]
        assert verify_run(rd.path).verdict == "PASS", (k, steps[k - 1])
        assert (rd.rep_dir(0) / "rep.json").stat().st_mtime_ns == kept
