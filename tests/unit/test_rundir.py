"""pack/rundir.py: the run record's schema, the layout, aggregates recomputed from the repetitions."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pack import fsio
from pack.results import RepResult
from pack.rundir import (
    RUN_SCHEMA,
    RepTiming,
    RunDir,
    RunRecord,
    RunRecordError,
    RunStatus,
    aggregate,
    is_finished_rep_key,
    latest,
    read_record,
    runs_of,
)


def record(**over) -> RunRecord:
    base = dict(
        paper="p",
        row="r",
        run_id="20260101T000000Z-smoke-abcdef12",
        cell="c",
        experiment="e",
        scale="smoke",
        params={"a": 1},
        params_hash="abcdef12" * 8,
        target={"hardware": "cpu"},
        hardware="cpu",
        gpu_models=[],
        seed=0,
        reps_planned=2,
        max_runtime_s=600,
        status=RunStatus.running,
        started_at="2026-01-01T00:00:00+00:00",
        resumed=False,
    )
    return RunRecord(**(base | over))


def make_run(tmp_path, values=(1.0, 3.0), name="20260101T000000Z-smoke-abcdef12", summary=None) -> RunDir:
    rd = RunDir(tmp_path / "runs" / "p" / "r" / name)
    reps = []
    for i, v in enumerate(values):
        res = RepResult(metrics={"x": v, "tag": "abc"})
        d = rd.rep_dir(i)
        doc = {"index": i, "timing": {"started_at": "t", "wall_s": 0.1}, "result": res.to_json()}
        fsio.write_json_atomic(d / "rep.json", doc)
        fsio.write_sums(d)
        reps.append(res)
    timings = [RepTiming(started_at="t", wall_s=0.1, index=i, kept=False) for i in range(len(values))]
    rec = record(run_id=name, status=RunStatus.complete, reps_planned=len(values), reps=timings)
    if summary is not None:
        fsio.write_json_atomic(rd.summary_dir / "summary.json", summary.to_json())
    rec.metrics = aggregate(reps, summary)
    rd.write_record(rec)
    fsio.write_sums(rd.path)
    return rd


def test_record_round_trips_and_keeps_the_schema_field(tmp_path):
    rd = make_run(tmp_path)
    data = json.loads(rd.run_json.read_text())
    assert data["schema"] == RUN_SCHEMA and data["status"] == "complete"
    assert data["metrics"]["x"] == {
        "values": [1.0, 3.0],
        "n": 2,
        "mean": 2.0,
        "std": math.sqrt(2),
        "min": 1.0,
        "max": 3.0,
        "median": 2.0,
    }
    assert data["metrics"]["tag"] == {"values": ["abc", "abc"], "n": 2}  # no numeric aggregates for strings
    again = read_record(rd.run_json)
    assert again == rd.record and again.status is RunStatus.complete


@pytest.mark.parametrize(
    "schema, words", [("pack.run/2", "schema 'pack.run/2'"), (None, "no 'schema' field")]
)
def test_unknown_or_newer_schema_is_one_sentence(tmp_path, schema, words):
    rd = make_run(tmp_path)
    data = json.loads(rd.run_json.read_text())
    data.pop("schema") if schema is None else data.update(schema=schema)
    rd.run_json.write_text(json.dumps(data))
    with pytest.raises(RunRecordError) as e:
        read_record(rd.run_json)
    msg = str(e.value)
    assert str(rd.run_json) in msg and words in msg and "upgrade pack" in msg and "\n" not in msg


def test_damaged_fields_name_the_field(tmp_path):
    rd = make_run(tmp_path)
    data = json.loads(rd.run_json.read_text())
    data["status"] = "finished-ish"
    rd.run_json.write_text(json.dumps(data))
    with pytest.raises(RunRecordError, match=r"field 'status'"):
        read_record(rd.run_json)
    rd.run_json.write_text('{"status": "compl')
    with pytest.raises(RunRecordError, match="truncated or not JSON"):
        read_record(rd.run_json)


def test_layout_is_spelled_once(tmp_path):
    rd = RunDir(tmp_path / "x")
    assert rd.rep_dir(7).relative_to(rd.path).as_posix() == "reps/rep-007"
    assert rd.rep_tmp(7).relative_to(rd.path).as_posix() == "reps/.rep-007.tmp"
    assert is_finished_rep_key("runs/p/r/id/reps/rep-012/rep.json")
    assert not is_finished_rep_key("runs/p/r/id/reps/.rep-012.tmp/rep.json")
    assert not is_finished_rep_key("runs/p/r/id/reps/rep-012.damaged-5/rep.json")


def test_runs_of_and_latest_newest_first(tmp_path):
    a = make_run(tmp_path, name="20260101T000000Z-smoke-aaaaaaaa")
    b = make_run(tmp_path, name="20260102T000000Z-smoke-aaaaaaaa")
    (b.path.parent / ".20260103T000000Z-smoke-aaaaaaaa.tmp").mkdir()
    assert [r.name for r in runs_of(a.path.parent)] == [b.name, a.name]
    assert [r.path for r in latest(tmp_path / "runs")] == [b.path]
    assert [r.path for r in latest(a.path)] == [a.path]


def test_intact_run_has_no_integrity_problems(tmp_path):
    rd = make_run(tmp_path, summary=RepResult(metrics={"over_all": 5.0}))
    assert rd.integrity() == []


def test_run_json_disagreeing_with_the_reps_is_named(tmp_path):
    rd = make_run(tmp_path)
    data = json.loads(rd.run_json.read_text())
    data["metrics"]["x"]["mean"] = 2.5  # the summary says something the repetitions do not
    rd.run_json.write_text(json.dumps(data))
    fsio.write_sums(rd.path)  # a consistent forgery: checksums regenerated
    problems = RunDir(rd.path).integrity()
    assert len(problems) == 1 and "metric 'x' mean is 2.5" in problems[0] and "give 2.0" in problems[0]
    assert str(rd.run_json) in problems[0]


def test_rep_file_changed_with_resummed_checksums_is_caught(tmp_path):
    rd = make_run(tmp_path)
    doc = json.loads((rd.rep_dir(1) / "rep.json").read_text())
    doc["result"]["metrics"]["x"] = 30.0
    (rd.rep_dir(1) / "rep.json").write_text(json.dumps(doc))
    fsio.write_sums(rd.rep_dir(1))
    fsio.write_sums(rd.path)
    problems = RunDir(rd.path).integrity()
    assert any("metric 'x'" in p and "values" in p for p in problems), problems


def test_metric_only_in_run_json_or_only_in_reps(tmp_path):
    rd = make_run(tmp_path)
    data = json.loads(rd.run_json.read_text())
    data["metrics"]["ghost"] = {
        "values": [1.0],
        "n": 1,
        "mean": 1.0,
        "std": 0.0,
        "min": 1.0,
        "max": 1.0,
        "median": 1.0,
    }
    del data["metrics"]["tag"]
    rd.run_json.write_text(json.dumps(data))
    problems = RunDir(rd.path).aggregate_problems()
    assert any("'ghost' is not in any repetition" in p for p in problems)
    assert any("'tag' of the per-repetition files is absent" in p for p in problems)


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(finite, st.integers(-1000, 1000)), min_size=1, max_size=6),
    st.integers(0, 5),
    st.sampled_from(["mean", "std", "min", "max", "median"]),
)
def test_any_edit_of_an_aggregate_is_caught(tmp_path_factory, values, which, key):
    rd = make_run(tmp_path_factory.mktemp("r"), values=tuple(values))
    assert rd.aggregate_problems() == []
    data = json.loads(rd.run_json.read_text())
    old = data["metrics"]["x"][key]
    data["metrics"]["x"][key] = old + max(1.0, abs(old)) * (which + 1)
    rd.run_json.write_text(json.dumps(data))
    assert any(f"metric 'x' {key}" in p for p in RunDir(rd.path).aggregate_problems())


def test_runs_started_in_one_second_sort_in_the_order_they_started(tmp_path):
    """Selection orders a row's runs by name: a run with another params hash started in the same
    second as the last one must still sort after it (CI: an errored newer run was judged the older)."""
    from types import SimpleNamespace

    from pack.run import _new_run_dir

    made = [
        _new_run_dir(tmp_path, SimpleNamespace(scale="smoke", params_hash=lambda h=h: h * 8)).path.name
        for h in "f0"  # the second hash sorts before the first within one second
    ]
    assert sorted(made) == made and made[0][:16] < made[1][:16]
