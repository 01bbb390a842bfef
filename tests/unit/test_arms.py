"""The one arm loop (pack.experiments.arms): order, once, watches under an ExitStack, errors per arm."""

import pytest

from pack.errors import PackError
from pack.experiments import arms
from pack.results import RunContext

pytestmark = pytest.mark.throughput


class RecordingWatch:
    """A watch that records what it saw; its reasons and record go into the repetition."""

    def __init__(self, log, name="w"):
        self.log, self.name = log, name

    def __enter__(self):
        self.log.append(f"{self.name}:enter")
        return self

    def __exit__(self, exc_type, exc, tb):
        self.log.append(f"{self.name}:exit:{exc_type.__name__ if exc_type else None}")
        return False

    def reasons(self):
        return [f"{self.name} saw a neighbour"]

    def record(self):
        return {"checked": True, "name": self.name}


def _ctx(tmp_path, rep=0):
    return RunContext(
        run_dir=tmp_path,
        rep_dir=tmp_path,
        rep_index=rep,
        reps=4,
        scale="smoke",
        seed=0,
        device="cpu",
        hardware="cpu",
        deadline=float("inf"),
    )


def test_order_interleaved_and_alternate():
    assert [arms.arm_order(["a", "b"], i) for i in range(3)] == [["a", "b"]] * 3
    assert [arms.arm_order(["a", "b", "c"], i, "alternate") for i in range(3)] == [
        ["a", "b", "c"],
        ["c", "b", "a"],
        ["a", "b", "c"],
    ]


def test_loop_follows_the_order_runs_once_arms_once_and_notes_the_watches(tmp_path):
    spec = {"a": {}, "b": {}, "a_ppl": {"once": True}}
    seen, log = [], []
    for rep in range(2):

        def measure(arm, s):
            seen.append(arm)
            return arms.ArmOutcome({"x": 1.0})

        res = arms.run_rep(
            spec, _ctx(tmp_path, rep), measure, order="alternate", watches={"gpu_watch": RecordingWatch(log)}
        )
        assert res.info["gpu_watch"] == {"checked": True, "name": "w"}
        assert res.info["contamination"] == ["w saw a neighbour"]
    assert seen == ["a", "b", "a_ppl", "b", "a"]  # rep 2 reversed, without the once-only arm
    assert res.metrics == {"b.x": 1.0, "a.x": 1.0}
    assert log == ["w:enter", "w:exit:None"] * 2


def test_a_failing_arm_is_its_error_and_the_others_still_run(tmp_path):
    def measure(arm, spec):
        if arm == "b":
            raise PackError("the engine is missing")
        if arm == "c":
            raise ZeroDivisionError("bug")
        if arm == "d":
            return arms.ArmOutcome({"wall_s": 1.0}, {"exit_code": 3}, "exited with code 3; last lines:\nboom")
        return arms.ArmOutcome({"tok_s": 39.28})

    res = arms.run_rep({"a": {}, "b": {}, "c": {}, "d": {}, "e": {}}, _ctx(tmp_path), measure)
    assert res.errors == {
        "b": "the engine is missing",
        "c": "raised ZeroDivisionError: bug",
        "d": "exited with code 3; last lines:\nboom",
    }
    assert res.metrics == {"a.tok_s": 39.28, "d.wall_s": 1.0, "e.tok_s": 39.28}
    assert res.info["d"] == {"exit_code": 3}


def test_prepare_failure_skips_the_arm_before_the_watches(tmp_path):
    log = []

    def prepare(arm, spec):
        log.append(f"prepare {arm}")
        if arm == "b":
            raise PackError("the Python package 'llama_cpp' is needed but is not installed")

    def measure(arm, s):
        log.append(arm)
        return arms.ArmOutcome({"v": 1})

    res = arms.run_rep(
        {"a": {}, "b": {}}, _ctx(tmp_path), measure, watches={"w": RecordingWatch(log)}, prepare=prepare
    )
    assert log == ["prepare a", "prepare b", "w:enter", "a", "w:exit:None"]
    assert "llama_cpp" in res.errors["b"] and res.metrics == {"a.v": 1}


def test_an_interrupt_reaches_every_watch_exit_and_the_notes_are_kept(tmp_path):
    log = []

    def measure(arm, spec):
        raise KeyboardInterrupt

    ctx = _ctx(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        arms.run_rep(
            {"a": {}}, ctx, measure, watches={"g": RecordingWatch(log, "g"), "c": RecordingWatch(log, "c")}
        )
    assert log == ["g:enter", "c:enter", "c:exit:KeyboardInterrupt", "g:exit:KeyboardInterrupt"]
