"""Tables for the GPU null re-run: one row per run (clean, with co-resident load), from run.json
and the verifier. Writes OUT/throughput_gpu.md and OUT/throughput_gpu.json; prints the Markdown.

    python3 bench/gpu/throughput_report.py OUT LABEL=RUN_DIR [LABEL=RUN_DIR ...]
    python3 bench/gpu/throughput_report.py issue14 OUT [OUT ...]

The second form reads what bench/gpu/issue14.sh left in one or more calls' $OUT folders (later
folders win for a step run twice) and prints the Markdown the docs take: the device and versions,
every step's status, the CUDA wheel build, the llama.cpp null re-run table, the overhead and CV
benches, the GPU test results and the SmolLM2 rows. Missing pieces print as "not run" with the
step's status, never as a number.
"""

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pack import gpuinfo  # noqa: E402
from pack.verify import verify_run  # noqa: E402


def one(label: str, run_dir: Path) -> dict:
    run = json.loads((run_dir / "run.json").read_text())
    m = run["metrics"]
    v = verify_run(run_dir)

    def val(name, key="mean"):
        e = m.get(name)
        return None if e is None else e.get(key, e["values"][0])

    return {
        "label": label,
        "row": f"{run['paper']}:{run['row']}",
        "scale": run["scale"],
        "run_id": run["run_id"],
        "reps": run["reps_planned"],
        "verdict": v.verdict,
        "why": v.why,
        "baseline_tok_s": val("baseline.decode_tok_s"),
        "baseline_std": val("baseline.decode_tok_s", "std"),
        "mcr_tok_s": val("mcr.decode_tok_s"),
        "mcr_std": val("mcr.decode_tok_s", "std"),
        "baseline_cv": val("baseline.decode_tok_s_cv"),
        "mcr_cv": val("mcr.decode_tok_s_cv"),
        "delta_pct": val("mcr.delta_pct"),
        "variance_ratio": val("mcr.variance_ratio"),
        "delta_ci": [val("mcr.delta_pct_ci_low"), val("mcr.delta_pct_ci_high")],
        "variance_p": val("mcr.variance_p"),
        "prefill_ms": val("baseline.prefill_ms"),
        "roofline_fraction": val("baseline.roofline_fraction"),
        "bandwidth_gbs": val("device_bandwidth_gbs"),
        "harness_overhead_pct": val("baseline.harness_overhead_pct"),
        "engine_untimed_pct": val("baseline.engine_untimed_pct"),
        "contamination": run.get("contamination", []),
        "metrics": [
            {
                "metric": x.metric,
                "verdict": x.verdict,
                "measured": x.measured,
                "expected": x.expected,
                "rule": x.rule,
            }
            for x in v.metrics
            if x.verdict != "NOT-APPLICABLE"
        ],
    }


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_line(path: Path, needle: str) -> str | None:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if needle in x]
    except OSError:
        return None
    return lines[-1].strip("= ").strip() if lines else None


def issue14(outs: list[Path]) -> str:
    """The docs' Markdown from issue14.sh's output folders (see the module doc)."""
    steps: dict[str, dict] = {}
    found: dict[str, Path] = {}  # file name -> the latest folder that has it
    for o in outs:
        for line in (
            (o / "issue14_steps.jsonl").read_text().splitlines()
            if (o / "issue14_steps.jsonl").is_file()
            else []
        ):
            st = json.loads(line)
            if st["status"] != "done-earlier" or st["step"] not in steps:
                steps[st["step"]] = st | {"call": o.name}
        for name in (
            "issue14_env.json",
            "llamacpp_build.txt",
            "overhead.json",
            "quiet.json",
            "pytest_gpu_other.txt",
            "pytest_gpu_throughput.txt",
            "paperb/throughput_gpu.md",
            "smollm2/smollm2_results.json",
            "smollm2/smollm2_detectability.md",
        ):
            if (o / name).is_file():
                found[name] = o / name

    def status(step: str) -> str:
        st = steps.get(step)
        return "not run (no record)" if st is None else f"not run ({st['status']})"

    env = _json(found["issue14_env.json"]) if "issue14_env.json" in found else {}
    md = ["## GPU results of bench/gpu/issue14.sh", ""]
    md.append(
        f"Device: {env.get('gpu') or 'none (CPU dry run)'} · host CPUs {env.get('host_cpus')} · "
        f"Python {env.get('python')} · torch {env.get('torch')} · transformers {env.get('transformers')} · "
        f"nvcc {env.get('nvcc') or '—'} · run folders: {', '.join(o.name for o in outs)}"
    )
    md += ["", "| step | status | rc | seconds | call |", "|---|---|---|---|---|"]
    for name, st in steps.items():
        md.append(f"| {name} | {st['status']} | {st.get('rc')} | {st.get('seconds')} | {st['call']} |")
    b = found.get("llamacpp_build.txt")
    md += [
        "",
        "**CUDA wheel**: "
        + ((_last_line(b, "build rc=") or _last_line(b, "reused") or "?") if b else status("build")),
    ]
    if b:
        md.append(f"({_last_line(b, 'llama-cpp-python') or '?'}; {_last_line(b, 'wheel ready') or '?'})")
    md += ["", "### paperB:llamacpp-null-mid (clean, co-resident load)", ""]
    md.append(
        found["paperb/throughput_gpu.md"].read_text().split("\n", 2)[-1]
        if "paperb/throughput_gpu.md" in found
        else status("paperb")
    )
    md += ["", "### Harness overhead (bench/throughput_overhead.py)", ""]
    ov = _json(found["overhead.json"]) if "overhead.json" in found else None
    if ov:
        s = ov["summary"]
        h = s["harness"]
        md += [
            f"{ov['model']}, n_gpu_layers {ov['n_gpu_layers']}, {ov['n_decode']} tokens, "
            f"{len(ov['runs']['harness'])} "
            f"runs, llama-cpp-python {ov.get('llama_cpp_python')}, {ov.get('date')}",
            "",
            "| loop | llama.cpp tok/s | harness overhead % (median) | engine untimed % "
            "| total gap % (median) | gap µs/token (median) |",
            "|---|---|---|---|---|---|",
        ]
        for k, v in s.items():
            md.append(
                f"| {k} | {fmt(v.get('decode_tok_s'), '.2f')} | "
                f"{fmt(v.get('harness_overhead_pct'), '.3f')} "
                f"({fmt(v.get('harness_overhead_pct_median'), '.3f')}) | "
                f"{fmt(v.get('engine_untimed_pct'), '.3f')} | "
                f"{fmt(v.get('total_gap_pct'), '.3f')} ({fmt(v.get('total_gap_pct_median'), '.3f')}) | "
                f"{fmt(v.get('gap_us_per_token'), '.1f')} ({fmt(v.get('gap_us_per_token_median'), '.1f')}) |"
            )
        md.append(
            f"\nHarness overhead {h['harness_overhead_pct']:.3f} % "
            f"(median {h.get('harness_overhead_pct_median')}) "
            f"(target < 1 %: {'met' if ov['ok'] else 'NOT met'})"
            + (
                f"; before/after total gap {ov['before_after_gap_ratio']}x "
                f"(medians {ov.get('before_after_gap_ratio_median')}x)"
                if "before_after_gap_ratio" in ov
                else ""
            )
        )
    else:
        md.append(status("overhead"))
    md += ["", "### A/A quietness (bench/throughput_quiet.py)", ""]
    q = _json(found["quiet.json"]) if "quiet.json" in found else None
    if q:
        md += [
            f"{q['model']}, {q['n_decode']} tokens, {q['reps']} reps per arm after {q['warmup']} warm-up, "
            f"{q['date']}",
            "",
            "| clock | CV A | CV B | variance ratio B/A | delta % | CV incl. warm-up |",
            "|---|---|---|---|---|---|",
        ]
        for clock in ("llamacpp_timer", "wall_clock"):
            c = q[clock]
            md.append(
                f"| {clock} | {fmt(c['A']['cv'], '.3%')} | {fmt(c['B']['cv'], '.3%')} | "
                f"{fmt(c['ratio'], '.2f')}x | "
                f"{fmt(c['delta_pct'], '+.3f')} | {fmt(c['cv_with_warmup'], '.3%')} |"
            )
        warm = ", ".join(format(w["vs_steady_pct"], "+.2f") + " %" for w in q["warmup_runs"])
        md.append(
            f"\nWarm-up runs vs steady: {warm or '—'}; per-token harness overhead "
            f"{q['per_token']['harness_overhead_pct_mean']:.3f} % "
            f"(std {fmt(q['per_token']['harness_overhead_pct_std'], '.3f')}); "
            f"clocks: {json.dumps(q['clocks'])}; CV <= 1 %: {'met' if q['ok'] else 'NOT met'}"
        )
    else:
        md.append(status("quiet"))
    md += ["", "### pytest tests/gpu", ""]
    for name, step in (("pytest_gpu_other.txt", "pytest-other"), ("pytest_gpu_throughput.txt", "pytest-tp")):
        line = _last_line(found[name], " in ") if name in found else None
        md.append(f"- {step}: {line or status(step)}")
    tp = [
        o / "pytest_tp_runs" / k
        for o in outs
        for k in ("clean", "loaded")
        if (o / "pytest_tp_runs" / k).is_dir()
    ]
    for d in tp:  # the throughput test's two runs (paperB:harness-null, transformers, 6 reps)
        r = one(d.name, d)
        md.append(
            f"  - {d.parent.parent.name}/{d.name}: **{r['verdict']}**, "
            f"baseline {fmt(r['baseline_tok_s'], '.2f')} tok/s (CV {fmt(r['baseline_cv'], '.2%')}), "
            f"mcr CV {fmt(r['mcr_cv'], '.2%')}, delta {fmt(r['delta_pct'], '+.2f')} %, "
            f"variance ratio {fmt(r['variance_ratio'], '.2f')}x; "
            f"{'; '.join(r['contamination']) or 'no contamination'}"
        )
    md += ["", "### SmolLM2 (bench/gpu/smollm2.sh)", ""]
    sm = _json(found["smollm2/smollm2_results.json"]) if "smollm2/smollm2_results.json" in found else None
    if sm:
        md.append(f"{sm.get('gpu')} · {sm.get('date')} · versions {json.dumps(sm.get('versions'))}")
        md += ["", "| row@scale | status | device | reps | key metrics |", "|---|---|---|---|---|"]
        for key, r in sm["rows"].items():
            keys = [
                k
                for k in r["metrics"]
                if k.endswith(
                    (
                        ".ppl",
                        "decode_tok_s",
                        "decode_tok_s_cv",
                        "variance_ratio",
                        "roofline_fraction",
                        "reps_bit_identical",
                        "harness_overhead_pct",
                    )
                )
            ]
            vals = ", ".join(
                f"{k} {r['metrics'][k]:.6g}"
                if isinstance(r["metrics"][k], (int, float))
                else f"{k} {r['metrics'][k]}"
                for k in keys[:10]
            )
            md.append(f"| {key} | {r['status']} | {r['device']} | {r['reps']} | {vals} |")
    else:
        md.append(status("smollm2"))
    return "\n".join(md) + "\n"


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "issue14":
        print(issue14([Path(a) for a in sys.argv[2:]]))
        return
    out = Path(sys.argv[1])
    pairs = [a.split("=", 1) for a in sys.argv[2:]]
    runs = [one(label, Path(run_dir)) for label, run_dir in pairs]
    gpus = [g["name"] for g in gpuinfo.gpus()] or ["no GPU (CPU dry run)"]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Throughput null re-run: clean vs co-resident load",
        "",
        f"GPU: {', '.join(gpus)} · driver {gpuinfo.driver_version() or '—'} · {now}",
        "",
        "| run | verdict | baseline tok/s (CV) | mcr tok/s (CV) | delta % [95% CI] "
        "| variance ratio (Brown–Forsythe p) | prefill ms | roofline | reps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['label']} | **{r['verdict']}** | {fmt(r['baseline_tok_s'], '.2f')} "
            f"({fmt(r['baseline_cv'], '.2%')}) | "
            f"{fmt(r['mcr_tok_s'], '.2f')} ({fmt(r['mcr_cv'], '.2%')}) | {fmt(r['delta_pct'], '+.2f')} "
            f"[{fmt(r['delta_ci'][0], '+.2f')}, {fmt(r['delta_ci'][1], '+.2f')}] | "
            f"{fmt(r['variance_ratio'], '.2f')}x (p {fmt(r['variance_p'], '.2g')}) | "
            f"{fmt(r['prefill_ms'], '.2f')} | {fmt(r['roofline_fraction'], '.3%')} | {r['reps']} |"
        )
    for r in runs:
        lines += ["", f"**{r['label']}** ({r['row']}, {r['scale']}, run {r['run_id']}): {r['why']}"]
        if r["harness_overhead_pct"] is not None:
            lines.append(
                f"- baseline arm: harness overhead {fmt(r['harness_overhead_pct'], '.3f')} % of llama.cpp's "
                f"decode time, llama.cpp's untimed host work {fmt(r['engine_untimed_pct'], '.3f')} %, "
                f"device bandwidth {fmt(r['bandwidth_gbs'], '.0f')} GB/s"
            )
        for c in r["contamination"]:
            lines.append(f"- {c}")
    md = "\n".join(lines) + "\n"
    (out / "throughput_gpu.md").write_text(md)
    (out / "throughput_gpu.json").write_text(
        json.dumps({"gpus": gpus, "date": now, "runs": runs}, indent=2, default=str)
    )
    print(md)


if __name__ == "__main__":
    main()
