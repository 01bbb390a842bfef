"""The command experiment's additions for seed 002/003 rows: take max/min, diffs, interpreter_args,
and a relative repo found under the project root."""

import sys

import pytest

from pack.errors import ManifestError
from pack.experiments import command

LOG = """[Eval] Step 250 | Target-alone acc: 0.730 | Bridged acc: 0.290
[Eval] Step 1000 | Target-alone acc: 0.730 | Bridged acc: 0.815
[Eval] Step 3000 | Target-alone acc: 0.730 | Bridged acc: 0.360
"""
PEAK = r"\[Eval\] Step \d+ \| Target-alone acc: [0-9.]+ \| Bridged acc: (?P<acc>[0-9.]+)"


def test_take_max_min_and_unknown_take():
    for take, want in [("max", 0.815), ("min", 0.29), ("last", 0.36)]:
        metrics, _ = command.parse(LOG, [{"regex": PEAK, "take": take}], "a")
        assert metrics == {"acc": want}
    with pytest.raises(ManifestError, match="'params.take': Input should be 'last', 'first'"):
        command.parse(LOG, [{"name": "p", "regex": PEAK, "take": "biggest"}], "a")


def test_interpreter_args_go_between_interpreter_and_script(tmp_path):
    (tmp_path / "s.py").write_text("print(1)\n")
    prog = command.resolve_program(
        command.Params(
            script="s.py", repo=str(tmp_path), interpreter=sys.executable, interpreter_args=["-X", "utf8"]
        )
    )
    assert prog.problem is None and prog.argv[1:] == ["-X", "utf8", str(tmp_path / "s.py")]


def test_relative_repo_falls_back_to_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prog = command.resolve_program(
        command.Params(script="tests/fixtures/latentwire_cross_attention.py", repo=".", interpreter="python3")
    )
    assert prog.problem is None and prog.fingerprint.is_file()
    assert prog.fingerprint.name == "latentwire_cross_attention.py"
    prog = command.resolve_program(command.Params(script="no/such.py", repo=".", interpreter="python3"))
    assert "not found in repository" in prog.problem


def test_diffs_are_per_arm(tmp_path):
    from pack.results import RunContext

    script = tmp_path / "s.py"
    script.write_text("import sys\nprint('peak 0.8'); print('final', sys.argv[1])\n")
    ctx = RunContext(
        run_dir=tmp_path,
        rep_dir=tmp_path,
        rep_index=0,
        reps=1,
        scale="smoke",
        seed=0,
        device="cpu",
        hardware="cpu",
        deadline=float("inf"),
    )
    params = {
        "script": "s.py",
        "repo": str(tmp_path),
        "interpreter": sys.executable,
        "version_args": [],
        "parsers": [{"regex": r"peak (?P<peak>[\d.]+)"}, {"regex": r"final (?P<final>[\d.]+)"}],
        "diffs": {"degradation": ["peak", "final"]},
        "arms": {"a": {"args": ["0.3"]}, "b": {"args": ["0.8"]}},
    }
    res = command.run_rep(params, ctx)
    assert res.errors == {}
    assert res.metrics["a.degradation"] == pytest.approx(0.5) and res.metrics[
        "b.degradation"
    ] == pytest.approx(0.0)
