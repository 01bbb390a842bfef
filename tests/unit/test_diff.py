"""`pack diff`: per metric A vs B under the metric's own tolerance, environment differences beside it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pack import fsio
from pack.cli import cli
from pack.errors import PackError
from tests.unit.test_status import record, write_reps


def fake_run(root: Path, run_id: str, metrics: dict, gpu: str) -> Path:
    d = root / "local-ablation" / "int6-clip-search" / run_id
    d.mkdir(parents=True)
    write_reps(d, metrics)  # diff checks run.json against its repetitions
    fsio.write_json_atomic(d / "run.json", record(run_id, metrics=metrics))
    fsio.write_json_atomic(d / "env.json", {"gpu": {"models": [gpu]}, "collected_at": run_id})
    fsio.write_sums(d)
    return d


def test_diff_judges_each_metric_by_its_tolerance_and_shows_env(home, tmp_path):
    a = fake_run(
        tmp_path / "a", "1", {"n_params": [73984, 73984], "int6_over_int8": [0.7734, 0.7734]}, "L40S"
    )
    b = fake_run(
        tmp_path / "b", "2", {"n_params": [73984, 73984], "int6_over_int8": [0.7800, 0.7800]}, "H100"
    )
    res = CliRunner().invoke(cli, ["diff", str(a), str(b)])
    assert res.exit_code == 1, res.output  # int6_over_int8 moved beyond its ±1e-07% rule
    line = next(x for x in res.output.splitlines() if x.strip().startswith("int6_over_int8"))
    assert "NO" in line and "+0.0066" in line and "%" in line
    assert any(x.strip().startswith("n_params") and " yes " in x for x in res.output.splitlines())
    assert "gpu.models" in res.output and "L40S" in res.output and "H100" in res.output
    assert "collected_at" not in res.output  # volatile fields are left out, as in env --diff
    doc = json.loads(CliRunner().invoke(cli, ["diff", str(a), str(a), "--json"]).output)
    assert doc["rows"][0]["metrics"][0]["within"] is True and doc["rows"][0]["env"] == []
    assert doc["rows"][0]["note"] == ""
    c = tmp_path / "c" / "local-ablation" / "int6-clip-search" / "3"
    c.parent.mkdir(parents=True)
    rec = record("3", params_hash="f" * 16, metrics={"n_params": [73984]}) | {"scale": "full"}
    write_reps(c, {"n_params": [73984]})
    fsio.write_json_atomic(c / "run.json", rec)
    fsio.write_sums(c)
    res = CliRunner().invoke(cli, ["diff", str(a), str(c)])
    assert "note: A ran scale smoke" in res.output and "B scale full" in res.output


def test_diff_refuses_damaged_runs_and_missing_paths(home, tmp_path):
    a = fake_run(tmp_path / "a", "1", {"n_params": [1]}, "L40S")
    b = fake_run(tmp_path / "b", "2", {"n_params": [1]}, "L40S")
    (b / "run.json").write_text((b / "run.json").read_text().replace('"cpu"', '"gpu"'))
    res = CliRunner().invoke(cli, ["diff", str(a), str(b)])
    assert isinstance(res.exception, PackError) and res.exception.exit_code == 2
    assert "no intact row in common" in str(res.exception) and "B " in str(res.exception)
    assert "checksum mismatch" in str(res.exception)  # the damaged side is named, not silently dropped
    res = CliRunner().invoke(cli, ["diff", str(a), str(tmp_path / "nope")])
    assert "no such run folder, runs tree or bundle" in str(res.exception)
