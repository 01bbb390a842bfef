"""The command experiment's json_file parser (seed 004's rows read the author's result files)."""

import json
import os
import sys
import time

import pytest

from pack.errors import ManifestError
from pack.experiments import command
from pack.results import RunContext

PPL = {"baseline": {"ppl": 3.89}, "e2e_2x": {"ppl": 2.58}, "e2e_4x": {"ppl": 3.72, "note": "x"}}
DOWN = [
    {"tag": "e2e_2x", "strict_match": 0.10, "flexible_extract": 0.2},
    {"tag": "e2e_2x_uncompressed", "strict_match": 0.795},
    {"tag": "e2e_2x", "strict_match": 0.799, "flexible_extract": 0.8},  # a rerun, upserted last
]


def test_json_path_keys_upserted_tags_indexes_and_wildcards():
    assert command.json_path(PPL, "e2e_2x.ppl") == [2.58]
    assert command.json_path(DOWN, "tag=e2e_2x.strict_match") == [0.799]
    assert command.json_path(DOWN, "tag=e2e_2x_uncompressed.flexible_extract") == []
    assert command.json_path(DOWN, "0.strict_match") == [0.10]
    assert command.json_path(DOWN, "-1.strict_match") == [0.799]
    assert command.json_path(PPL, "*.ppl") == [3.89, 2.58, 3.72]
    assert command.json_path(PPL, "e2e_4x.note") == []  # a string is not a metric
    assert command.json_path({"a": True}, "a") == []  # nor is a bool
    assert command.json_path(PPL, "no.such.path") == []


def _write(path, obj, age_s=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    if age_s:
        t = time.time() - age_s
        os.utime(path, (t, t))


def test_parse_files_reads_fresh_files_relative_to_cwd(tmp_path):
    _write(tmp_path / "results" / "07a" / "perplexity_results.json", PPL)
    _write(tmp_path / "results" / "07a" / "downstream_results.json", DOWN)
    parsers = [
        {
            "name": "ppl",
            "json_file": "results/{d}/perplexity_results.json",
            "fields": {"2x.ppl": "e2e_2x.ppl"},
        },
        {
            "json_file": "results/{d}/downstream_results.json",
            "fields": {"2x.strict": "tag=e2e_2x.strict_match", "n": "*.strict_match"},
            "take": "count",
        },
        {"json_file": "absent.json", "fields": {"x": "x"}, "optional": True},
    ]
    got = command.parse_files(parsers, "a", {"d": "07a", "t": "e2e"}, tmp_path, since=time.time() - 5)
    assert got.metrics == {"2x.ppl": 2.58, "2x.strict": 1.0, "n": 3.0} and got.unmatched == []


def test_parse_files_refuses_stale_missing_and_broken_files(tmp_path):
    _write(tmp_path / "old.json", PPL, age_s=3600)
    (tmp_path / "bad.json").write_text("{not json")
    _write(tmp_path / "good.json", PPL)
    parsers = [
        {"name": "old", "json_file": "old.json", "fields": {"x": "e2e_2x.ppl"}},
        {"name": "gone", "json_file": "gone.json", "fields": {"x": "e2e_2x.ppl"}},
        {"name": "bad", "json_file": "bad.json", "fields": {"x": "e2e_2x.ppl"}},
        {"name": "wrong", "json_file": "good.json", "fields": {"x": "e2e_99x.ppl"}},
        {"name": "other-arm", "json_file": "gone.json", "fields": {"x": "y"}, "arms": ["b"]},
    ]
    got = command.parse_files(parsers, "a", {}, tmp_path, since=time.time() - 5)
    assert got.metrics == {}
    text = " | ".join(got.unmatched)
    assert len(got.unmatched) == 4, text
    assert "old (" in text and "older than the arm's start (not written by this run)" in text
    assert "gone.json was not written" in text
    assert "bad.json is not readable JSON" in text
    assert "good.json has none of e2e_99x.ppl" in text


def test_text_parsers_ignore_json_file_parsers():
    metrics, unmatched = command.parse("x 1\n", [{"json_file": "f.json", "fields": {"a": "a"}}], "a")
    assert metrics == {} and unmatched == []


@pytest.mark.parametrize(
    "parser,msg",
    [
        ({"json_file": "f.json"}, "a json_file parser needs 'fields'"),
        (
            {"json_file": "f.json", "regex": "x", "fields": {"a": "a"}},
            "exactly one of 'regex', 'json_prefix'",
        ),
        ({"name": "p"}, "exactly one of 'regex', 'json_prefix' or 'json_file'"),
    ],
)
def test_parser_sources_are_checked(parser, msg):
    with pytest.raises(ManifestError, match=msg):
        command.parse("", [parser], "a")


def _ctx(tmp_path):
    return RunContext(
        run_dir=tmp_path,
        rep_dir=tmp_path / "rep",
        rep_index=0,
        reps=1,
        scale="smoke",
        seed=0,
        device="cpu",
        hardware="cpu",
        deadline=time.monotonic() + 60,
    )


def test_an_arm_run_in_its_rep_dir_writes_and_reads_its_json_there(tmp_path):
    """cwd: "{rep_dir}" keeps a stand-in's results inside the run; the parser reads them after it exits."""
    script = tmp_path / "w.py"
    script.write_text(
        "import json, os, sys\n"
        "os.makedirs('results', exist_ok=True)\n"
        "json.dump({'e2e_2x': {'ppl': float(sys.argv[1])}}, open('results/p.json', 'w'))\n"
    )
    ctx = _ctx(tmp_path)
    ctx.rep_dir.mkdir()
    params = {
        "script": str(script),
        "interpreter": sys.executable,
        "version_args": [],
        "cwd": "{rep_dir}",
        "arms": {"a": {"args": ["2.5"]}, "b": {"args": ["{rep_dir}"]}},
        "parsers": [{"json_file": "results/p.json", "fields": {"ppl": "e2e_2x.ppl"}, "arms": ["a"]}],
    }
    res = command.run_rep(params, ctx)
    assert res.errors.get("a") is None, res.errors
    assert res.metrics["a.ppl"] == 2.5
    assert (ctx.rep_dir / "results" / "p.json").is_file() and not (tmp_path / "results").exists()
    assert "b" in res.errors and "could not convert string to float" in res.errors["b"]  # {rep_dir} rendered


def test_parser_templates_count_as_used_values():
    p = command.Params(
        script="s.py",
        results_dir="results/07a",
        result_tag="e2e",
        parsers=[{"json_file": "{results_dir}/p.json", "fields": {"x": "{result_tag}_2x.ppl"}}],
    )
    assert {"results_dir", "result_tag"} <= p.template_names()
