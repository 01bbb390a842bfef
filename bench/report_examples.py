"""Write a report with FAIL, ERROR, CONTAMINATED and NOT-APPLICABLE rows, for looking at (docs/img).

    python bench/report_examples.py runs/ reports/examples

Takes the newest run of a few demo rows under RUNS and judges altered copies of their records in
memory, through the real judging code (verify.judge_metrics / build_row) and the real renderers:
one metric pushed outside its rule (FAIL), one arm failed (ERROR), a row whose variable never ran
(NOT-APPLICABLE), plus Paper B's MCR null row as if run on the paper's RTX 4060 with co-resident GPU
work (CONTAMINATED, basis paper). Nothing on disk under RUNS is changed.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from pack import expected as exp_mod
from pack import fsio, report
from pack.manifest import find_row
from pack.rundir import latest
from pack.verify import build_row, judge_metrics, verify_run


def _judge(run: dict, run_dir: Path):
    _, row = find_row(f"{run['paper']}:{run['row']}")
    base = dict(
        paper=run["paper"],
        row=run["row"],
        run_id=run["run_id"],
        run_dir=str(run_dir),
        scale=run["scale"],
        hardware=run["hardware"],
        gpu_models=run.get("gpu_models") or [],
        image=run.get("image"),
        started_at=run.get("started_at"),
        finished_at=run.get("finished_at"),
    )
    return build_row(base, judge_metrics(run, row, exp_mod.for_row(run["paper"], run["row"])), run)


def _first_numeric(run: dict) -> str:
    ef = exp_mod.for_row(run["paper"], run["row"])
    for name, entry in run["metrics"].items():
        if ef and ef.for_metric(name) and all(isinstance(v, float) for v in entry["values"]):
            return name
    raise SystemExit(f"{run['row']}: no float metric with an expectation to push outside its rule")


def main(runs: Path, out: Path) -> None:
    import json

    dirs = {rd.path.parent.name: rd.path for rd in latest(runs)}
    rows = []
    load = lambda d: json.loads((d / "run.json").read_text())  # noqa: E731

    fail = copy.deepcopy(load(dirs["wire-compression"]))
    name = _first_numeric(fail)
    fail["metrics"][name] = {
        **fail["metrics"][name],
        "values": [v * 1.3 for v in fail["metrics"][name]["values"]],
    }
    fail["metrics"][name]["mean"] = fail["metrics"][name]["values"][0]
    rows.append(_judge(fail, dirs["wire-compression"]))

    err = copy.deepcopy(load(dirs["exp1"]))
    first = next(iter(err["metrics"]))
    err["metrics"].pop(first)
    err["errors"][first.split(".")[0]] = (
        "exited with code 137 (out of memory); last lines: CUDA out of memory"
    )
    rows.append(_judge(err, dirs["exp1"]))

    na = copy.deepcopy(load(dirs["exp4"]))
    na["not_applicable"]["__row__"] = (
        "no configuration of the variable 'attention' can run here: needs a CUDA GPU"
    )
    rows.append(_judge(na, dirs["exp4"]))

    # Paper B's MCR null re-run as if measured on the paper's GPU, with another process on it.
    values = {
        "baseline.decode_tok_s": [39.27, 39.31, 39.25],
        "mcr.decode_tok_s": [39.2, 39.24, 39.3],
        "mcr.delta_pct": [-0.13, -0.1, -0.15],
        "mcr.variance_ratio": [1.1, 1.1, 1.1],
    }
    metrics = {
        k: {"values": v, "n": 3, "mean": sum(v) / 3, "median": sorted(v)[1], "min": min(v), "max": max(v)}
        for k, v in values.items()
    }
    pb = {
        "paper": "paperB",
        "row": "mcr-null",
        "run_id": "example-not-a-real-run",
        "scale": "full",
        "hardware": "local",
        "gpu_models": ["NVIDIA GeForce RTX 4060"],
        "image": None,
        "params": {},
        "metrics": metrics,
        "errors": {},
        "not_applicable": {},
        "contamination": ["another process (pid 4242, 1.2 GB) used the GPU during the run"],
    }
    rows.append(_judge(pb, Path("(example)")))

    rows += [verify_run(dirs[r]) for r in ("ablation1-stability", "int6-clip-search") if r in dirs]
    out.mkdir(parents=True, exist_ok=True)
    fsio.write_text_atomic(
        out / "report.html", report.html_report(rows, title="Example: a report with failures")
    )
    fsio.write_text_atomic(out / "report.md", report.markdown(rows))
    fsio.write_text_atomic(out / "junit.xml", report.junit(rows))
    print(out / "report.html")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
