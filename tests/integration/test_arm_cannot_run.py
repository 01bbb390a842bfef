"""An arm that cannot run is that arm's ERROR in run.json (the runner exits 1 on it), never a
silent "complete" with nothing measured."""

import dataclasses
import importlib.util
import json

import pytest

from pack.manifest import Target, get_manifest
from pack.run import execute
from pack.verify import verify_run

pytestmark = pytest.mark.throughput


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is not None,
    reason="llama-cpp-python is installed here: this test needs it absent",
)
def test_llamacpp_null_without_llama_cpp_is_an_error_of_every_arm(tmp_path):
    m = get_manifest("paperB")
    rr = m.row("llamacpp-null").at("smoke")
    rr = dataclasses.replace(rr, reps=2, target=Target(hardware="cpu"))
    run_dir = execute(m, rr, runs_root=tmp_path / "runs", hw_name="cpu")
    run = json.loads((run_dir / "run.json").read_text())
    assert set(run["errors"]) == {"baseline", "mcr"}
    assert all("'llama_cpp' is needed" in e for e in run["errors"].values())
    assert not any(k.endswith(".decode_tok_s") for k in run["metrics"])
    v = verify_run(run_dir)
    assert v.verdict == "ERROR"


def test_engine_absent_in_a_command_row_is_an_error_of_every_arm(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERB_ENGINE", str(tmp_path / "no-such-engine"))
    m = get_manifest("paperB")
    rr = dataclasses.replace(m.row("mcr-null").at("full"), reps=1, target=Target(hardware="cpu"))
    run = json.loads((execute(m, rr, runs_root=tmp_path / "runs", hw_name="cpu") / "run.json").read_text())
    assert set(run["errors"]) == {"baseline", "mcr", "baseline_ppl", "mcr_ppl"}
    assert all("not found" in e for e in run["errors"].values())
