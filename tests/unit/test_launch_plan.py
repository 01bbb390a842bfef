"""Planning for launches: fit refusals, deadlines, worst case, the budget gate, and the ledger."""

from __future__ import annotations

import json

import pytest

from pack import planning
from pack.errors import PackError
from pack.launch import ledger
from tests.unit.test_launch_helpers import gpu_project, pack, sky_home  # noqa: F401  (a fixture)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, sky_home):  # noqa: F811
    monkeypatch.setenv("HOME", str(sky_home))  # a dry run imports SkyPilot: never under the real ~/.sky
    monkeypatch.setenv("PACK_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("BUDGET_USD", raising=False)
    gpu_project(tmp_path, monkeypatch)


def test_four_gpu_row_on_a_one_gpu_instance_is_refused_at_plan_time(capsys):
    code, _, err = pack(["launch", "gpu-demo:four-gpu", "--hw", "runpod-h100-sxm", "--dry-run"], capsys)
    assert (
        code == 2
        and "row 'four-gpu' at scale full targets runpod-h100-sxm-x4" in err
        and "needs 4 GPU(s), has 1" in err
    )


def test_row_needing_more_vram_is_refused(capsys):
    code, _, err = pack(["launch", "gpu-demo:big-vram", "--hw", "g6e.xlarge", "--dry-run"], capsys)
    assert code == 2 and "needs 80 GB per GPU, has 48 GB" in err and "Traceback" not in err


def test_paper_launch_skips_rows_that_do_not_fit_and_says_so(capsys, monkeypatch):
    monkeypatch.setenv("PACK_IMAGE_PREFIX", "ghcr.io/lab/ecmoe")
    pytest.importorskip("sky")
    code, _, err = pack(["launch", "gpu-demo", "--hw", "runpod-h100-sxm", "--dry-run"], capsys)
    assert code == 0, err
    assert "skip gpu-demo:four-gpu: needs 4 GPU(s), has 1" in err
    # one cluster per row, each in its own image, each with its own overhead and idle limit
    assert "dry run: would launch 2 cluster(s), 1 at a time" in err and "2 launches, each +15m00s" in err
    for image in ("cu121", "l40s"):
        assert (
            "SkyPilot chose: RunPod (US) 1x_H100-SXM_SECURE H100-SXM:1 image "
            f"docker:ghcr.io/lab/ecmoe:{image}" in err
        )


def test_no_row_fits(capsys):
    code, _, err = pack(["launch", "gpu-demo:four-gpu", "--hw", "cpu", "--dry-run"], capsys)
    assert code == 2 and "cpu cannot run it (needs 4 GPU(s), has 0)" in err


def test_unknown_hardware_lists_the_catalogue(capsys):
    code, _, err = pack(["launch", "gpu-demo:four-gpu", "--hw", "g6e.xlarg"], capsys)
    assert code == 2 and "unknown hardware 'g6e.xlarg' (did you mean 'g6e.xlarge'" in err
    for name in ("cpu", "p5.48xlarge", "runpod-h100-sxm-x4", "local-gtx1650"):
        assert f"  {name}" in err


def test_deadline_and_worst_case_arithmetic():
    p = planning.launch_plan(["gpu-demo:four-gpu"], "runpod-h100-sxm-x4", "full", overhead_s=600, grace_s=600)
    assert p["deadline_s"] == 1200 + 600
    assert p["worst_case_usd"] == round((1200 + 600 + 600) / 3600 * 11.96, 4)
    assert p["estimate_usd"] == round((600 + 600) / 3600 * 11.96, 4)
    planning.check_budget(p, p["worst_case_usd"])  # exactly the budget: allowed
    with pytest.raises(planning.BudgetExceeded):
        planning.check_budget(p, p["worst_case_usd"] - 0.01)


def test_budget_from_env(monkeypatch):
    assert planning.budget_from_env(None) is None
    monkeypatch.setenv("BUDGET_USD", "12.5")
    assert planning.budget_from_env(None) == 12.5 and planning.budget_from_env(3.0) == 3.0
    monkeypatch.setenv("BUDGET_USD", "ten")
    with pytest.raises(PackError, match="BUDGET_USD='ten' is not a number"):
        planning.budget_from_env(None)


def test_launch_plan_command_gates_on_budget(monkeypatch, capsys):
    monkeypatch.setenv("BUDGET_USD", "0.5")
    code, out, err = pack(["launch", "plan", "gpu-demo:l40s-row", "--hw", "g6e.xlarge"], capsys)
    assert code == 2 and "deadline 1h15m" in out and "budget: 0.50 USD" in out and "refusing to launch" in err
    code, out, _ = pack(
        ["launch", "plan", "gpu-demo:l40s-row", "--hw", "g6e.xlarge", "--budget", "5", "--json"], capsys
    )
    assert code == 0 and json.loads(out)["worst_case_usd"] == pytest.approx(
        (3600 + 900 + 900) / 3600 * 1.861, abs=1e-3
    )


def test_pack_plan_output_is_unchanged_for_a_paper(capsys):
    code, out, _ = pack(["plan", "gpu-demo", "--hw", "g6e.xlarge"], capsys)
    assert (
        code == 0 and "four-gpu" in out and "refused  needs 4 GPU(s), has 1" in out and "launch:" not in out
    )


def test_ledger_folds_events_and_survives_a_torn_line(tmp_path):
    runs = tmp_path / "r"
    ledger.append(
        {
            "event": "launch",
            "launch_id": "pk-1",
            "rows": ["a:b"],
            "provider": "sky",
            "hardware": "g6e.xlarge",
            "start": "2026-01-01T00:00:00+00:00",
            "price_usd_per_hour": 2.0,
            "deadline_s": 3600,
            "expires_s": 4500,
            "cluster": "pk-1",
            "results": "s3://older-field",  # ignored: a ledger outlives the fields it was written with
        },
        runs,
    )
    ledger.append({"event": "update", "launch_id": "pk-1", "status": "running"}, runs)
    with open(ledger.ledger_path(runs), "a") as f:
        f.write('{"event": "launch", "launch_id": "pk-2", "rows"')  # a crash mid-write
    rec = ledger.get("pk-1", runs)
    ledger.record_stop(rec, "finished", stop="2026-01-01T01:30:00+00:00", runs_root=runs)
    ledger.record_stop(
        ledger.get("pk-1", runs), "down", stop="2026-01-01T03:00:00+00:00", runs_root=runs
    )  # ignored
    rec = ledger.get("pk-1", runs)
    assert rec.cluster == "pk-1" and rec.status == "finished" and rec.cost_usd == 3.0
    assert rec.expires_at == "2026-01-01T01:15:00+00:00"
    assert ledger.get("last", runs).launch_id == "pk-1"
    table = ledger.render(ledger.records(runs))
    assert "pk-1" in table and "3.0000" in table and "total: 1 launch(es), 3.0000 USD" in table
    with pytest.raises(PackError, match="no launch 'pk-9'"):
        ledger.get("pk-9", runs)


def test_cli_startup_imports_no_cloud_sdk_or_backend():
    import subprocess
    import sys

    from tests.unit.test_launch_helpers import REPO

    code = (
        "import sys, pack.cli; pack.cli.main(['launch', '--help']) if False else None; "
        "heavy = [m for m in ('sky', 'boto3', 'botocore', 'runpod', 'torch', 'hcl2') if m in sys.modules]; "
        "print(heavy)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr
