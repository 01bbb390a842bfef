"""The verifier's rules and verdicts, on hand-made run records (no files)."""

import pytest
from pydantic import TypeAdapter

from pack.expected import ExpectedFile
from pack.manifest import Row
from pack.results import RepResult
from pack.run import aggregate
from pack.tolerance import Tolerance
from pack.verify import judge_metrics, row_verdict

T = TypeAdapter(Tolerance)


def entry(*values):
    return aggregate([RepResult(metrics={"m": v}) for v in values], None)["m"]


@pytest.mark.parametrize(
    "rule,expected,values,ok",
    [
        ({"kind": "exact"}, 5, [5, 5], True),
        ({"kind": "exact"}, 5, [5, 6], False),
        ({"kind": "exact"}, "ab12", ["ab12"], True),
        ({"kind": "abs", "value": 0.1}, 1.0, [1.05, 1.09], True),
        ({"kind": "abs", "value": 0.1}, 1.0, [1.2, 1.3], False),
        ({"kind": "rel", "value": 0.05}, 39.28, [38.0, 39.0, 40.0], True),
        ({"kind": "rel", "value": 0.05}, 39.28, [36.0, 36.5, 37.0], False),
        ({"kind": "decimals", "places": 4}, 6.12341, [6.123412, 6.123409], True),
        (
            {"kind": "decimals", "places": 4},
            6.1234,
            [6.1234, 6.1236],
            False,
        ),  # every repetition must round equal
        ({"kind": "range", "min": 70, "exclusive": True}, None, [71.0, 72.0], True),
        ({"kind": "range", "min": 70, "exclusive": True}, None, [70.0], False),
        ({"kind": "range", "min": 0, "max": 1}, None, [0.5], True),
    ],
)
def test_rules(rule, expected, values, ok):
    chk = T.validate_python(rule).check(expected, entry(*values)["values"], "mean")
    assert chk.passed is ok, chk.why


def test_stat_welch_no_difference_and_greater():
    rule = T.validate_python({"kind": "stat", "test": "welch", "expect": "no-difference", "alpha": 0.05})
    same = rule.check(None, [39.1, 39.3, 39.2, 39.25], "mean", [39.2, 39.3, 39.15, 39.28])
    assert same.passed, same.why
    shifted = rule.check(None, [35.1, 35.3, 35.2, 35.25], "mean", [39.2, 39.3, 39.15, 39.28])
    assert not shifted.passed, shifted.why
    greater = T.validate_python({"kind": "stat", "test": "mannwhitney", "expect": "greater"})
    assert greater.check(None, [5, 6, 7, 8, 9], "mean", [1, 2, 3, 4, 2]).passed


def test_range_needs_a_bound():
    with pytest.raises(Exception, match="needs 'min', 'max'"):
        T.validate_python({"kind": "range"})


ROW = Row.model_validate(
    {
        "id": "r",
        "cell": "c",
        "experiment": "command",
        "target": {"hardware": "cpu"},
        "metrics": {
            "tok_s": {"tolerance": {"kind": "rel", "value": 0.05}, "contamination_sensitive": True},
            "ppl": {"tolerance": {"kind": "decimals", "places": 4}},
        },
    }
)


def run_record(metrics, **kw):
    reps = [RepResult(metrics=m) for m in metrics]
    rec = {
        "scale": "full",
        "hardware": "g6e.xlarge",
        "gpu_models": ["NVIDIA L40S"],
        "image": "l40s",
        "params": {},
        "metrics": aggregate(reps, None),
        "errors": {},
        "not_applicable": {},
        "contamination": [],
    }
    rec.update(kw)
    return rec


def expected(*items):
    return ExpectedFile.model_validate({"paper": "p", "row": "r", "expectations": list(items)})


SRC = {"seed": "000.txt", "table": "t"}


def by_metric(verdicts):
    return {v.metric: v for v in verdicts}


def test_in_scope_pass_and_fail():
    ef = expected({"metric": "tok_s", "value": 39.28, "scope": {"gpu": ["L40S"]}, "source": SRC})
    ok = by_metric(judge_metrics(run_record([{"tok_s": 39.0}, {"tok_s": 39.5}]), ROW, ef))["tok_s"]
    assert ok.verdict == "PASS"
    bad = by_metric(judge_metrics(run_record([{"tok_s": 30.0}]), ROW, ef))["tok_s"]
    assert bad.verdict == "FAIL" and "allowed" in bad.why


def test_off_scope_is_not_applicable_with_reason_never_pass():
    ef = expected({"metric": "tok_s", "value": 39.28, "scope": {"gpu": ["RTX 4060"]}, "source": SRC})
    v = by_metric(judge_metrics(run_record([{"tok_s": 39.28}]), ROW, ef))["tok_s"]
    assert v.verdict == "NOT-APPLICABLE" and "RTX 4060" in v.why and "NVIDIA L40S" in v.why


def test_off_scope_weaker_rule_applies_when_declared():
    ef = expected(
        {
            "metric": "tok_s",
            "value": 39.28,
            "scope": {"gpu": ["RTX 4060"]},
            "off_scope": {"kind": "range", "min": 1},
            "source": SRC,
        }
    )
    v = by_metric(judge_metrics(run_record([{"tok_s": 120.0}]), ROW, ef))["tok_s"]
    assert v.verdict == "PASS" and "weaker rule" in v.why and "off-scope" in v.rule


def test_contaminated_is_not_fail():
    ef = expected(
        {"metric": "tok_s", "value": 39.28, "source": SRC}, {"metric": "ppl", "value": 6.1234, "source": SRC}
    )
    rec = run_record(
        [{"tok_s": 30.0, "ppl": 6.12341}], contamination=["another process held the GPU (pid 4242)"]
    )
    vs = by_metric(judge_metrics(rec, ROW, ef))
    assert (
        vs["tok_s"].verdict == "CONTAMINATED" and "pid 4242" in vs["tok_s"].why and "rerun" in vs["tok_s"].why
    )
    assert vs["ppl"].verdict == "PASS"  # perplexity is deterministic: contamination does not touch it
    assert row_verdict(list(vs.values())) == "CONTAMINATED"


@pytest.mark.parametrize(
    "ef",
    [
        None,  # no expectations at all for the row
        expected({"metric": "tok_s", "value": 39.28, "scope": {"gpu": ["RTX 4060"]}, "source": SRC}),
    ],
    ids=["no-expectation", "off-scope"],
)
def test_a_contaminated_run_is_contaminated_even_where_nothing_judges_it(ef):
    rec = run_record([{"tok_s": 30.0, "ppl": 6.1}], contamination=["another process held the GPU (pid 4242)"])
    vs = by_metric(judge_metrics(rec, ROW, ef))
    assert vs["tok_s"].verdict == "CONTAMINATED" and "pid 4242" in vs["tok_s"].why
    assert not vs["tok_s"].checked and vs["tok_s"].basis == ""  # shown, never counted as a check
    assert vs["ppl"].verdict == "NOT-APPLICABLE"  # not contamination-sensitive: unjudged stays unjudged
    assert row_verdict(list(vs.values())) == "CONTAMINATED"
    clean = by_metric(judge_metrics(run_record([{"tok_s": 30.0}]), ROW, ef))
    assert clean["tok_s"].verdict == "NOT-APPLICABLE"


def test_a_cpu_blessed_reference_does_not_judge_a_gpu_run(tmp_path, monkeypatch):
    """bless scopes a reference to the device that produced it, whatever the row targets."""
    from pack import expected as exp_mod

    monkeypatch.setattr(exp_mod, "path_for", lambda paper, row: tmp_path / f"{row}.yaml")
    cpu = run_record([{"ppl": 6.12341}], scale="smoke", hardware="cpu", gpu_models=[], image=None)
    cpu.update(paper="p", row="r", run_id="cpu-run", target={"hardware": "cpu", "image": None})
    path = exp_mod.bless(cpu, ["ppl"], ROW)
    ef = exp_mod.load_expected(path)
    assert ef.expectations[0].scope.gpu == ["cpu"]
    assert by_metric(judge_metrics(cpu, ROW, ef))["ppl"].verdict == "PASS"
    gpu = dict(cpu, hardware="local-gpu", gpu_models=["NVIDIA H200"])
    gpu["metrics"] = run_record([{"ppl": 6.3}])["metrics"]
    v = by_metric(judge_metrics(gpu, ROW, ef))["ppl"]
    assert v.verdict == "NOT-APPLICABLE" and "NVIDIA H200" in v.why
    gpu_path = exp_mod.bless(dict(gpu, run_id="gpu-run"), ["ppl"], ROW)
    scopes = [e.scope.gpu for e in exp_mod.load_expected(gpu_path).expectations]
    assert scopes == [["cpu"], ["NVIDIA H200"]]  # the CPU reference is kept beside the GPU's


DELTA_ROW = Row.model_validate(
    {
        "id": "r",
        "cell": "c",
        "experiment": "command",
        "target": {"hardware": "cpu"},
        "metrics": {"x.ppl": {"tolerance": {"kind": "rel", "value": 1e-3}}},
    }
)


def test_a_difference_tighter_than_its_term_is_refused_and_bless_widens_it(tmp_path, monkeypatch):
    """ppl_delta = ppl - baseline: a band narrower than ppl's lets the delta FAIL while ppl PASSes
    (CI saw it: ppl off by 0.018 % within its ±0.1 %, delta off by 0.36 against ±0.05)."""
    from pack import expected as exp_mod

    blessed = {"blessed_run": "r1", "blessed_at": "2026-12-03T00:00:00+00:00"}
    ef = expected(
        {"metric": "x.ppl", "value": 2052.85, "source": blessed},
        {
            "metric": "x.ppl_delta",
            "value": -3.84,
            "tolerance": {"kind": "abs", "value": 0.05},
            "source": blessed,
        },
    )
    (i, delta_w, term, term_w), *rest = exp_mod.narrow_differences(ef, DELTA_ROW)
    assert not rest and i == 1 and delta_w == 0.05 and term.metric == "x.ppl"
    assert term_w == pytest.approx(2.05285)
    paper = expected(
        {"metric": "x.ppl", "value": 2052.85, "source": blessed},
        {"metric": "x.ppl_delta", "value": -3.84, "tolerance": {"kind": "abs", "value": 0.05}, "source": SRC},
    )
    assert exp_mod.narrow_differences(paper, DELTA_ROW) == []  # a paper's own tolerance is its requirement

    monkeypatch.setattr(exp_mod, "path_for", lambda paper, row: tmp_path / f"{row}.yaml")
    run = run_record([{"x.ppl": 2052.85, "x.ppl_delta": -3.84}], scale="smoke", gpu_models=[])
    run.update(paper="p", row="r", run_id="run-1")
    written = exp_mod.load_expected(exp_mod.bless(run, None, DELTA_ROW))
    delta = next(e for e in written.expectations if e.metric == "x.ppl_delta")
    assert delta.tolerance.kind == "abs" and delta.tolerance.value >= 2.05285
    assert exp_mod.narrow_differences(written, DELTA_ROW) == []


def test_missing_error_and_not_applicable_metrics():
    ef = expected(
        {"metric": "tok_s", "value": 39.28, "source": SRC},
        {"metric": "ppl", "value": 6.1, "source": SRC},
        {"metric": "gauge.tok_s", "value": 1, "tolerance": {"kind": "exact"}, "source": SRC},
    )
    rec = run_record(
        [{}], errors={"gauge": "exited with code 3; last lines: oom"}, not_applicable={"ppl": "no GGUF here"}
    )
    vs = by_metric(judge_metrics(rec, ROW, ef))
    assert vs["tok_s"].verdict == "MISSING"
    assert vs["gauge.tok_s"].verdict == "ERROR" and "oom" in vs["gauge.tok_s"].why
    assert vs["ppl"].verdict == "NOT-APPLICABLE" and vs["ppl"].why == "no GGUF here"
    assert row_verdict(list(vs.values())) == "ERROR"


def test_stat_against_another_metric_of_the_run():
    row = Row.model_validate(
        {
            "id": "r",
            "cell": "c",
            "experiment": "command",
            "target": {"hardware": "cpu"},
            "metrics": {"mcr.tok_s": {"tolerance": {"kind": "stat", "against": "metric:base.tok_s"}}},
        }
    )
    ef = expected({"metric": "mcr.tok_s", "source": SRC})
    rec = run_record(
        [
            {"base.tok_s": 39.3, "mcr.tok_s": 39.2},
            {"base.tok_s": 39.2, "mcr.tok_s": 39.3},
            {"base.tok_s": 39.25, "mcr.tok_s": 39.22},
        ]
    )
    assert by_metric(judge_metrics(rec, row, ef))["mcr.tok_s"].verdict == "PASS"


def test_a_row_whose_variable_never_ran_is_not_applicable_never_pass():
    from pack.verify import build_row

    ef = expected(
        {"metric": "tok_s", "value": 39.28, "scope": {"gpu": ["L40S"]}, "source": SRC},
        {"metric": "ppl", "value": 6.1234, "source": SRC},
    )
    reason = "no configuration of the variable 'quantization' can run here: no quantization backend installed"
    rec = run_record([{"tok_s": 39.2}], not_applicable={"__row__": reason})
    row = build_row(
        {
            "paper": "p",
            "row": "r",
            "run_id": "x",
            "run_dir": "d",
            "scale": "full",
            "hardware": "h",
            "gpu_models": [],
        },
        judge_metrics(rec, ROW, ef),
        rec,
    )
    assert row.verdict == "NOT-APPLICABLE" and row.why == reason
    assert {m.metric for m in row.metrics} == {"tok_s", "ppl"}  # still listed
    assert not any(m.verdict == "PASS" for m in row.metrics) and "would be PASS" in row.metrics[0].why
    # an ERROR is never hidden by a row-level not-applicable
    rec = run_record([{"tok_s": 39.2}], not_applicable={"__row__": reason}, errors={"gauge": "crashed"})
    row = build_row(
        {
            "paper": "p",
            "row": "r",
            "run_id": "x",
            "run_dir": "d",
            "scale": "full",
            "hardware": "h",
            "gpu_models": [],
        },
        judge_metrics(rec, ROW, ef),
        rec,
    )
    assert row.verdict == "ERROR"


def test_basis_paper_reference_and_harness():
    from pack.verify import build_row, harness_reason

    blessed = {"blessed_run": "20261122T004156Z-smoke-1"}
    ef = expected(
        {"metric": "tok_s", "value": 39.28, "scope": {"gpu": ["RTX 4060"]}, "source": SRC},
        {"metric": "tok_s", "value": 39.0, "scope": {"scale": ["full"]}, "source": blessed},
        {"metric": "ppl", "value": 6.1234, "source": SRC},
    )
    vs = by_metric(judge_metrics(run_record([{"tok_s": 39.1, "ppl": 6.1234}]), ROW, ef))
    assert vs["ppl"].basis == "paper" and vs["ppl"].verdict == "PASS"
    assert vs["tok_s"].basis == "reference" and vs["tok_s"].verdict == "PASS"
    assert "paper value 39.28" in vs["tok_s"].paper and vs["tok_s"].paper_holds == "GPU RTX 4060"
    harness_row = Row.model_validate({**ROW.model_dump(), "scales": {"full": {"harness": "stand-in script"}}})
    assert harness_reason(harness_row, "full") == "stand-in script" and harness_reason(ROW, "full") == ""
    hv = judge_metrics(run_record([{"tok_s": 39.1, "ppl": 6.1234}]), harness_row, ef)
    assert {m.basis for m in hv if m.verdict == "PASS"} == {"harness"}
    row = build_row(
        {
            "paper": "p",
            "row": "r",
            "run_id": "x",
            "run_dir": "d",
            "scale": "full",
            "hardware": "h",
            "gpu_models": [],
        },
        list(vs.values()),
        run_record([{}]),
    )
    assert row.basis == "paper"


def test_an_in_scope_glob_that_matches_nothing_is_missing():
    ef = expected(
        {"metric": "engine_*.tok_s", "value": 1.0, "tolerance": {"kind": "abs", "value": 0.1}, "source": SRC},
        {"metric": "other_*.tok_s", "value": 1.0, "scope": {"gpu": ["H100"]}, "source": SRC},
    )
    vs = by_metric(judge_metrics(run_record([{"ppl": 6.1}]), ROW, ef))
    assert vs["engine_*.tok_s"].verdict == "MISSING" and "pattern" in vs["engine_*.tok_s"].why
    assert "other_*.tok_s" not in vs  # off scope: nothing expected here
    vs = by_metric(judge_metrics(run_record([{"engine_a.tok_s": 1.0}]), ROW, ef))
    assert "engine_*.tok_s" not in vs and vs["engine_a.tok_s"].verdict == "PASS"


def test_report_headline_counts_by_basis_and_json_is_valid():
    import json
    import math

    from pack import report
    from pack.verify import build_row

    ef = expected(
        {"metric": "tok_s", "value": 39.28, "scope": {"gpu": ["RTX 4060"]}, "source": SRC},
        {"metric": "tok_s", "value": 39.0, "source": {"blessed_run": "b1"}},
        {"metric": "ppl", "value": 6.1234, "source": {"blessed_run": "b1"}},
    )
    rec = run_record([{"tok_s": 39.1, "ppl": math.nan}])
    row = build_row(
        {
            "paper": "p",
            "row": "r",
            "run_id": "x",
            "run_dir": "d",
            "scale": "full",
            "hardware": "h",
            "gpu_models": [],
        },
        judge_metrics(rec, ROW, ef),
        rec,
    )
    lines = report.headline([row])
    assert lines[0].startswith(
        "paper values: 0 reproduced here, 0 failed, 1 off scope (where they hold: GPU RTX 4060)"
    )
    assert "reference checks" in lines[1] and "1 pass, 1 fail" in lines[1]
    assert "no paper number was reproduced" in lines[3]
    doc = json.loads(report.to_json([row]))
    assert doc["basis"]["reference"]["FAIL"] == 1 and doc["rows"][0]["basis"] == "reference"
    assert "within the paper's tolerance" not in report.markdown([row])
    xml = report.junit([row])
    assert "measured" in xml and "expected 6.1234" in xml and "name='basis' value=\"reference\"" in xml


def test_overview_deviation_is_normalised_and_one_sided_ranges_stay_one_sided():
    from pack.report_html import CLIP, COLORS, deviation
    from pack.verify import MetricVerdict as MV

    assert deviation(MV("m", "PASS", expected=10.0, measured=10.5, band=(9.0, 11.0))) == 0.5
    assert deviation(MV("m", "FAIL", expected=10.0, measured=12.0, band=(9.0, 11.0))) == 2.0
    assert deviation(MV("m", "PASS", measured=80.0, band=(70.0, None))) < 1  # inside a min-only range
    assert deviation(MV("m", "FAIL", measured=60.0, band=(70.0, None))) > 1
    assert 0 <= deviation(MV("m", "PASS", measured=1e6, band=(70.0, None))) <= 1  # far inside: 0, not -inf
    assert deviation(MV("m", "FAIL", expected="ab", measured="cd")) == CLIP  # exact: at the edge
    assert COLORS["FAIL"] != COLORS["ERROR"]


def test_html_report_leads_with_basis_headline_and_provenance(tmp_path):
    from pack import report
    from pack.verify import build_row

    ef = expected({"metric": "tok_s", "value": 39.28, "source": {"blessed_run": "b1"}})
    rec = run_record([{"tok_s": 30.0}, {"tok_s": 31.0}])
    row = build_row(
        {
            "paper": "p",
            "row": "r",
            "run_id": "x",
            "run_dir": str(tmp_path),
            "scale": "full",
            "hardware": "h",
            "gpu_models": [],
        },
        judge_metrics(rec, ROW, ef),
        rec,
    )
    page = report.html_report([row])
    assert page.index("reference checks") < page.index("Rows (failures first)")
    assert "expected/" in page and "sha256" in page and "data:image/png;base64" in page
    assert "within the paper's tolerance" not in page
