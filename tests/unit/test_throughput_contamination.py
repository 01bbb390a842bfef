"""NVML-side contamination reasons from recorded snapshots, process attribution, the CPU watch."""

import os
import subprocess
import sys
import time

import pytest

from pack.experiments.throughput import contamination as c

pytestmark = pytest.mark.throughput


def test_foreign_by_pid_when_pids_are_visible():
    procs = [
        {"gpu": 0, "pid": 10, "used_mib": 900.0, "name": "python3"},
        {"gpu": 0, "pid": 11, "used_mib": 4000.0, "name": "matmul"},
        {"gpu": 1, "pid": 12, "used_mib": 10.0, "name": "other-gpu"},
    ]
    foreign, how = c.foreign_processes(procs, mine={10}, expected_own=1, gpu=0, pid_visible=lambda p: True)
    assert how == "pid" and [p["pid"] for p in foreign] == [11]


def test_foreign_by_count_when_nvml_reports_another_pid_namespace():
    procs = [{"gpu": 0, "pid": 123456, "used_mib": 900.0, "name": None}]
    foreign, how = c.foreign_processes(procs, mine={42}, expected_own=1, pid_visible=lambda p: False)
    assert how == "count" and foreign == []  # one process, and this run accounts for one
    procs.append({"gpu": 0, "pid": 123999, "used_mib": 4000.0, "name": None})
    foreign, how = c.foreign_processes(procs, mine={42}, expected_own=1, pid_visible=lambda p: False)
    assert how == "count" and len(foreign) == 1


def test_own_pids_include_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        time.sleep(0.05)
        mine = c.own_pids()
        assert os.getpid() in mine and child.pid in mine and 1 not in mine
    finally:
        child.kill()
        child.wait()


def _snap(phase, foreign=(), throttle=(), idle=None):
    return {
        "phase": phase,
        "gpu": 0,
        "foreign": list(foreign),
        "attribution": "pid",
        "throttle_reasons": list(throttle),
        "idle_util_pct": idle,
    }


def test_judge_clean_snapshots_give_no_reason():
    assert c.judge([_snap("before", idle=0.0), _snap("during"), _snap("after")]) == []


def test_judge_names_every_reason():
    hog = {"pid": 777, "name": "python3", "used_mib": 4096.0, "gpu": 0}
    snaps = [
        _snap("before", [hog], idle=97.0),
        _snap("during", [hog], ["power cap (software)"]),
        _snap("during", [hog], ["power cap (software)", "thermal slowdown (software)"]),
        _snap("after"),
    ]
    reasons = c.judge(snaps)
    assert len(reasons) == 3
    assert (
        reasons[0].startswith("another process holds GPU 0")
        and "pid 777 (python3, 4096 MiB; seen before/during)" in reasons[0]
    )
    assert (
        "power cap (software) in 2 of 4 samples" in reasons[1]
        and "thermal slowdown (software) in 1 of 4" in reasons[1]
    )
    assert "97% busy before the measurement while this run was idle" in reasons[2]


def test_gpu_watch_without_nvml_says_nothing_was_checked(monkeypatch):
    from pack import gpuinfo

    monkeypatch.setattr(gpuinfo, "gpus", lambda: ())
    with c.GpuWatch() as w:
        pass
    assert w.reasons() == [] and w.record()["checked"] is False and "not checked" in w.record()["why"]


def test_cpu_watch_sees_a_competing_process():
    with c.CpuWatch(limit_cores=0.5) as quiet:
        time.sleep(0.3)
    assert quiet.record()["checked"] is True
    burner = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<3: pass"]
    )
    try:
        time.sleep(0.2)
        with c.CpuWatch(limit_cores=0.5) as busy:
            time.sleep(0.8)
    finally:
        burner.kill()
        burner.wait()
    assert busy.foreign_cores > 0.5
    assert busy.reasons() and "CPU cores during the measurement" in busy.reasons()[0]


def _nvml_with(monkeypatch, procs: list[dict]):
    """gpuinfo as NVML would answer on a one-GPU machine with these compute processes."""
    from pack import gpuinfo

    monkeypatch.setattr(gpuinfo, "gpus", lambda: ({"index": 0, "name": "test GPU"},))
    monkeypatch.setattr(gpuinfo, "health", lambda i=0: {"available": True, "throttle_bits": 0})
    monkeypatch.setattr(gpuinfo, "processes", lambda: [dict(p) for p in procs])


def test_during_samples_reuse_the_own_pids_walk_and_walk_again_for_a_new_child(monkeypatch):
    walks = []
    real = c.own_pids

    def counted():
        walks.append(1)
        return real()

    monkeypatch.setattr(c, "own_pids", counted)
    procs = [{"gpu": 0, "pid": os.getpid(), "used_mib": 10.0}]
    _nvml_with(monkeypatch, procs)
    w = c.GpuWatch(own_gpu_processes=lambda: 1)
    w.snapshot("before")
    for _ in range(5):
        w.snapshot("during")
    assert len(walks) == 1  # the sampling thread does not walk /proc while the timed loop runs
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        procs.append({"gpu": 0, "pid": child.pid, "used_mib": 10.0})
        snap = w.snapshot("during")
        assert len(walks) == 2 and snap["foreign"] == []  # a child started since is this run's own
        w.snapshot("after")
        assert len(walks) == 3 and w.reasons() == []
    finally:
        child.kill()
        child.wait()


def test_a_foreign_process_seen_during_is_still_named(monkeypatch):
    _nvml_with(monkeypatch, [{"gpu": 0, "pid": os.getpid()}, {"gpu": 0, "pid": 1, "used_mib": 5.0}])
    w = c.GpuWatch(own_gpu_processes=lambda: 1)
    w.snapshot("before")
    w.snapshot("during")
    assert any("another process holds GPU 0: pid 1" in r for r in w.reasons())
