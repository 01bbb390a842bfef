"""--hw / PACK_HW (issue 10, class 4, hardware side): a catalogue name, and what the run says it ran on
must agree with the GPUs detected — else run.json records `hardware_mismatch` and hardware-scoped
expectations do not apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pack import catalog
from pack.errors import ManifestError
from pack.tolerance import Scope
from tests.conftest import invoke_cli

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_name_is_refused_with_the_catalogue_listed():
    with pytest.raises(ManifestError) as e:
        catalog.resolve_hardware("g6e.xlarg", [])
    msg = str(e.value)
    assert "unknown hardware 'g6e.xlarg'" in msg and "did you mean 'g6e.xlarge'" in msg
    assert all(name in msg for name in catalog.hardware())  # every catalogue name listed


@pytest.mark.parametrize(
    "name, detected, mismatch",
    [
        ("cpu", [], None),
        ("cpu", ["NVIDIA H200"], "has no GPU but this machine has 1 GPU(s): NVIDIA H200"),
        ("local-gpu", ["NVIDIA H200"], None),
        ("local-gpu", [], "but this machine has no GPU"),
        ("g6e.xlarge", ["NVIDIA L40S"], None),
        (
            "g6e.xlarge",
            ["NVIDIA L4"],
            "is 1× L40S but this machine has 1 GPU(s): NVIDIA L4",
        ),  # never a substring
        ("local-gtx1650", ["NVIDIA GeForce GTX 1650"], None),
        ("local-gpu-x4", ["NVIDIA H200"] * 2, "is 4× GPU but this machine has 2 GPU(s)"),
    ],
)
def test_detected_gpus_must_agree_with_the_catalogue(name, detected, mismatch):
    if name not in catalog.hardware():
        pytest.skip(f"{name} is not in this catalogue")
    got = catalog.resolve_hardware(name, detected)
    assert got.name == name and got.hardware == catalog.hardware()[name]
    if mismatch is None:
        assert got.mismatch is None
    else:
        assert got.mismatch and mismatch in got.mismatch


def test_a_hardware_scoped_expectation_does_not_apply_to_a_mismatched_run():
    scope = Scope(hardware=["g6e.xlarge"])
    run = {"hardware": "g6e.xlarge", "gpu_models": ["NVIDIA L4"], "scale": "full"}
    assert scope.mismatch(run) is None
    why = "hardware 'g6e.xlarge' is 1× L40S but this machine has 1 GPU(s): NVIDIA L4"
    assert why in scope.mismatch(run | {"hardware_mismatch": why})
    assert Scope().mismatch(run | {"hardware_mismatch": why}) is None  # unscoped: still judged


def _pack(*args, env=None):
    return invoke_cli(args, env=env, cwd=ROOT)


def test_run_refuses_an_unknown_pack_hw_before_writing_anything(tmp_path):
    res = _pack("run", "int6-clip-search", "--out", str(tmp_path / "runs"), env={"PACK_HW": "h100-typo"})
    assert res.returncode == 2 and "unknown hardware 'h100-typo'" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_run_json_records_the_mismatch(tmp_path):
    if catalog.resolve_hardware("g6e.xlarge", _detected()).mismatch is None:
        pytest.skip("this machine is a g6e.xlarge")
    res = _pack("run", "int6-clip-search", "--out", str(tmp_path / "runs"), "--hw", "g6e.xlarge")
    assert res.returncode == 0, res.stderr[-2000:]
    run = json.loads(next((tmp_path / "runs").glob("*/*/*/run.json")).read_text())
    assert run["hardware"] == "g6e.xlarge" and "is 1× L40S but this machine has" in run["hardware_mismatch"]


def _detected() -> list[str]:
    from pack import gpuinfo

    return [g["name"] for g in gpuinfo.gpus()]
