"""exp7 / exp8 at smoke scale: real 2-process tensor- and expert-parallel decodes under torchrun
(gloo on the CPU), through `pack run`. About 40 s each on a 2-core machine."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pack.cli import main  # noqa: E402
from pack.experiments.forensics import uniform  # noqa: E402

pytestmark = pytest.mark.forensics


@pytest.mark.slow
@pytest.mark.parametrize(
    "row, label, name",
    [("exp7", "tp2", "tensor_parallel_experiment"), ("exp8", "ep2", "expert_parallel_experiment")],
)
def test_parallel_rows_run_under_torchrun(tmp_path, capsys, row, label, name):
    try:
        main(["run", row, "--out", str(tmp_path)])
    except SystemExit as e:
        assert not e.code, capsys.readouterr().err[-3000:]
    out, err = capsys.readouterr()
    run_dir = next(p for p in (tmp_path / "forensics" / row).iterdir())
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "complete", rec["errors"]
    m = {k: v["values"][0] for k, v in rec["metrics"].items()}
    assert f"{label}.reps_bit_identical" in m, rec["errors"]  # a failed torchrun launch says why here
    assert m[f"{label}.reps_bit_identical"] == 1 and m["uniform_json_valid"] == 1
    assert m[f"{label}.l2_hidden_last"] >= 0 and m[f"{label}.first_token_divergence"] >= -1
    doc = json.loads((run_dir / "summary" / f"{name}.json").read_text())
    assert uniform.validate(doc) == []
    cfg = next(c for c in doc["configurations"] if c["label"] == label)
    assert cfg["facts"]["world_size"] == 2 and cfg["facts"]["backend"] == "gloo"
    assert cfg["fixed_params"]["tp_size" if row == "exp7" else "ep_size"] == 2
    assert "torch.distributed.run --nproc-per-node=2" in err
    # one launch ran all three repetitions, loading the model once per rank
    report = json.loads((run_dir / "distributed" / label / "report.json").read_text())
    assert len(report["reps"]) == 3 and report["model_loads_per_rank"] == 1
