"""How quiet is a llama.cpp null A/A re-run, and where does its noise come from (target: CV <= 1 %).

    python bench/throughput_quiet.py [--layers 22] [--qtype Q8_0] [--n-gpu-layers -1] [--n-decode 256]
                                     [--reps 10] [--warmup 3] [--json FILE]

Loads TinyLlama-1.1B's shape (random weights, as a GGUF; --layers fewer for a quick CPU run) once,
runs the harness's timed decode (llamacpp._greedy_decode, the one paperB:llamacpp-null-mid uses)
`--warmup` times untimed, then `--reps` repetitions of two identical arms interleaved A B A B, each
`--n-decode` greedy tokens. It prints, per arm and for both clocks (llama.cpp's own t_eval and the
harness's wall clock around the loop):

    cv          std / mean of decode tok/s over the repetitions (the seed's clean 0.13 %)
    ratio       variance(B) / variance(A): the seed's clean band is 1x-1.5x
    delta %     mean(B) / mean(A) - 1

and the three measured suspects for noise:
    warm-up     the first runs after loading (kept untimed in the row) against the repetitions: their
                tok/s and the CV the re-run would show with them included;
    per token   the harness's own time per token (wall - engine calls) and its scatter across runs,
                i.e. what the wall clock adds over llama.cpp's timer;
    clocks      the GPU's SM and memory clock (NVML) before and after each repetition, and the
                correlation of tok/s with the SM clock (none on a CPU: not measured).
Prints one JSON line (also to --json) and a verdict line with the CV and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from throughput_overhead import add_model_args, load_model  # noqa: E402


def cv(xs: list[float]) -> float | None:
    return statistics.stdev(xs) / statistics.fmean(xs) if len(xs) > 1 and statistics.fmean(xs) else None


def clocks() -> dict:
    from pack import gpuinfo

    if not gpuinfo.gpus():
        return {}
    h = gpuinfo.health(0)
    return {k: h.get(k) for k in ("sm_clock_mhz", "mem_clock_mhz", "temperature_c", "power_w")}


def corr(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return statistics.correlation(xs, ys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(ap)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--target-cv", type=float, default=0.01)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from pack.experiments.throughput.llamacpp import _greedy_decode

    llama_cpp, llm, info, tokens = load_model(args)

    def one() -> dict:
        before = clocks()
        r = _greedy_decode(llm, tokens, args.n_decode)
        r.pop("_tokens")
        r["clocks_before"], r["clocks_after"] = before, clocks()
        return r

    warm = [one() for _ in range(args.warmup)]
    arms: dict[str, list[dict]] = {"A": [], "B": []}
    for _ in range(args.reps):
        for arm in arms:
            arms[arm].append(one())

    def clock_stats(key: str) -> dict:
        return {
            arm: {
                "cv": cv([r[key] for r in rs]),
                "mean_tok_s": statistics.fmean(r[key] for r in rs),
            }
            for arm, rs in arms.items()
        }

    out: dict = {"bench": "throughput_quiet", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out["model"] = f"{args.arch} x{args.layers} layers {args.qtype}, n_gpu_layers {args.n_gpu_layers}"
    out["llama_cpp_python"] = getattr(llama_cpp, "__version__", "?")
    out["n_decode"], out["reps"], out["warmup"] = args.n_decode, args.reps, args.warmup
    for name, key in (("llamacpp_timer", "decode_tok_s"), ("wall_clock", "decode_wall_tok_s")):
        s = clock_stats(key)
        a, b = ([r[key] for r in arms[x]] for x in "AB")
        va, vb = statistics.variance(a), statistics.variance(b)
        s["ratio"] = vb / va if va > 0 else None
        s["delta_pct"] = 100.0 * (statistics.fmean(b) / statistics.fmean(a) - 1.0)
        s["cv_pooled"] = cv(a + b)
        s["cv_with_warmup"] = cv([r[key] for r in warm] + a + b)
        out[name] = s
    every = arms["A"] + arms["B"]
    steady = statistics.fmean(r["decode_tok_s"] for r in every)
    out["warmup_runs"] = [
        {"decode_tok_s": r["decode_tok_s"], "vs_steady_pct": 100.0 * (r["decode_tok_s"] / steady - 1.0)}
        for r in warm
    ]
    per_token = [r["harness_overhead_pct"] for r in every]
    out["per_token"] = {
        "harness_overhead_pct_mean": statistics.fmean(per_token),
        "harness_overhead_pct_std": statistics.stdev(per_token) if len(per_token) > 1 else None,
        "engine_untimed_pct_mean": statistics.fmean(r["engine_untimed_pct"] for r in every),
    }
    sm = [r["clocks_before"].get("sm_clock_mhz") for r in every]
    if all(isinstance(x, (int, float)) for x in sm) and sm:
        out["clocks"] = {
            "sm_mhz_min": min(sm + [r["clocks_after"]["sm_clock_mhz"] for r in every]),
            "sm_mhz_max": max(sm + [r["clocks_after"]["sm_clock_mhz"] for r in every]),
            "mem_mhz": sorted({r["clocks_before"].get("mem_clock_mhz") for r in every}),
            "corr_tok_s_sm_clock": corr([r["decode_tok_s"] for r in every], [float(x) for x in sm]),
        }
    else:
        out["clocks"] = None  # no NVML here: not measured
    t = out["llamacpp_timer"]
    worst = max((t[a]["cv"] for a in "AB" if t[a]["cv"] is not None), default=None)
    out["ok"] = worst is not None and worst <= args.target_cv
    line = json.dumps(out, default=str)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    w = out["wall_clock"]
    warmups = ", ".join(format(x["vs_steady_pct"], "+.2f") + " %" for x in out["warmup_runs"]) or "none"

    def pct(x):
        return "n/a" if x is None else format(x, ".3%")

    def times(x):
        return "n/a" if x is None else format(x, ".2f") + "x"

    print(
        f"llama.cpp timer: CV A {pct(t['A']['cv'])} B {pct(t['B']['cv'])} (target <= {args.target_cv:.0%}: "
        f"{'met' if out['ok'] else 'NOT met'}), variance ratio {times(t['ratio'])}, "
        f"delta {t['delta_pct']:+.3f} %; wall clock: CV A {pct(w['A']['cv'])} B {pct(w['B']['cv'])}, "
        f"ratio {times(w['ratio'])}; warm-up runs vs steady: {warmups}; "
        f"CV with the warm-up runs included {pct(t['cv_with_warmup'])}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
