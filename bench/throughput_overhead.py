"""Harness overhead against llama.cpp's own decode time (target: under 1 %), and where it goes.

    python bench/throughput_overhead.py [--layers 4] [--runs 3] [--n-decode 32] [--n-gpu-layers 0]
                                        [--qtype F16] [--compare] [--watch] [--json FILE]

Writes (once, cached) a random-initialised Llama as a GGUF: TinyLlama-1.1B's width (--arch mid-llama)
or the 4.8 MiB tiny-llama (~1-2 ms per token on a CPU, close to a GPU step: the worst case), with
`--layers` layers; loads it with llama-cpp-python and runs the harness's timed decode (Paper B's prompt,
greedy tokens; pack.experiments.throughput.llamacpp._greedy_decode) `--runs` times after one warm-up. Per run,
with t_eval = llama.cpp's own decode time (llama_perf_context):

    sampling %          = 100 * (wall of the greedy argmax over the logits) / t_eval   (the sampling
                          every greedy decode does; llama.cpp's own tools time it apart, as t_sample)
    harness overhead %  = 100 * (loop wall clock - wall inside llama_decode + llama_synchronize
                          - sampling) / t_eval   (the harness's own bookkeeping: the 1 % target)
    engine untimed %    = 100 * (wall inside those calls - t_eval) / t_eval   (llama.cpp's own host work
                          before its timer starts: batch validation; no harness can remove it)
    total gap %         = the three together = 100 * (loop wall clock - t_eval) / t_eval

--compare also runs, interleaved with it, the loop the harness used before 2026-12-02 (Llama.eval per
token, np.ctypeslib.as_array over the logits each step) and prints the before/after ratio of the gaps.
--watch also runs the harness loop under the row's contamination watches (the NVML sampling thread
at 0.2 s and the CPU watch), to show what they add. Prints one JSON line (also to --json) and a
one-line verdict: the ratio of the harness overhead to llama.cpp's decode time against the 1 % target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def eval_loop(llm, tokens: list[int], n_decode: int) -> dict:
    """The decode loop as the harness had it until 2026-12-02 (the 'before' of --compare)."""
    import llama_cpp
    import numpy as np

    cctx = llm._ctx.ctx
    n_vocab = llm.n_vocab()
    llm.reset()
    llm._ctx.kv_cache_clear()
    llama_cpp.llama_perf_context_reset(cctx)
    llm.eval(tokens)
    llama_cpp.llama_synchronize(cctx)
    t1 = time.perf_counter()
    for _ in range(n_decode):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(cctx, -1), shape=(n_vocab,))
        llm.eval([int(logits.argmax())])
    llama_cpp.llama_synchronize(cctx)
    t2 = time.perf_counter()
    perf = llama_cpp.llama_perf_context(cctx)
    wall_ms = (t2 - t1) * 1000.0
    return {
        "decode_tok_s": round(perf.n_eval / perf.t_eval_ms * 1000.0, 4),
        "total_gap_pct": round(100.0 * (wall_ms - perf.t_eval_ms) / perf.t_eval_ms, 4),
        "gap_us_per_token": round(1000.0 * (wall_ms - perf.t_eval_ms) / n_decode, 2),
    }


def harness_loop(llm, tokens: list[int], n_decode: int) -> dict:
    from pack.experiments.throughput.llamacpp import _greedy_decode

    r = _greedy_decode(llm, tokens, n_decode)
    t_eval_ms = 1000.0 * n_decode / r["decode_tok_s"]
    total = r["harness_overhead_pct"] + r["sampling_pct"] + r["engine_untimed_pct"]
    return {
        "decode_tok_s": r["decode_tok_s"],
        "harness_overhead_pct": r["harness_overhead_pct"],
        "sampling_pct": r["sampling_pct"],
        "sampling_us_per_token": round(10.0 * r["sampling_pct"] * t_eval_ms / n_decode, 2),
        "engine_untimed_pct": r["engine_untimed_pct"],
        "total_gap_pct": round(total, 4),
        "gap_us_per_token": round(10.0 * total * t_eval_ms / n_decode, 2),
        "harness_us_per_token": round(10.0 * r["harness_overhead_pct"] * t_eval_ms / n_decode, 2),
    }


def watched(fn, gpu_layers: int):
    """fn() under the watches a throughput row runs its measurements in (harness.run_rep's)."""
    from pack.experiments.throughput.contamination import CpuWatch, GpuWatch

    def run():
        gpu = GpuWatch(0, interval_s=0.2, own_gpu_processes=lambda: 1)
        with gpu, CpuWatch(enabled=gpu_layers == 0):
            r = fn()
        r["gpu_watch_samples"] = len(gpu.snapshots) if gpu.available else None
        return r

    return run


def mean(runs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.fmean(vals), 4) if vals else None


def add_model_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--arch", default="mid-llama", help="a synthetic Llama: mid-llama or tiny-llama")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--n-decode", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--n-gpu-layers", type=int, default=0, help="-1: every layer on the GPU (a CUDA build)")
    ap.add_argument("--qtype", default="F16", choices=["F32", "F16", "Q8_0"])


def load_model(args):
    """(llama_cpp, the loaded Llama, its GGUFInfo, Paper B's prompt as tokens) for --layers/--qtype."""
    import llama_cpp

    from pack.experiments.throughput.harness import DEFAULT_PROMPT
    from pack.models.gguf import check_gguf, synthetic_gguf
    from pack.models.synthetic import arch

    # The arch's own layer count writes the same cached file a row with model synthetic:<arch> uses.
    layers = {} if args.layers == arch(args.arch)["num_hidden_layers"] else {"num_hidden_layers": args.layers}
    path = synthetic_gguf(args.arch, qtype=args.qtype, **layers)
    info = check_gguf(path)
    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=512,
        n_batch=512,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_gpu_layers=args.n_gpu_layers,
        verbose=False,
    )
    return llama_cpp, llm, info, llm.tokenize(DEFAULT_PROMPT.encode(), add_bos=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(ap)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--compare", action="store_true", help="also the loop used before 2026-12-02")
    ap.add_argument("--watch", action="store_true", help="also the harness loop under the watches")
    ap.add_argument("--json", type=Path, help="also write the JSON line to this file")
    args = ap.parse_args()

    llama_cpp, llm, info, tokens = load_model(args)
    loops = {"harness": lambda: harness_loop(llm, tokens, args.n_decode)}
    if args.compare:
        loops["before"] = lambda: eval_loop(llm, tokens, args.n_decode)
    if args.watch:
        loops["harness+watches"] = watched(loops["harness"], args.n_gpu_layers)
    for fn in loops.values():  # warm-up
        fn()
    runs: dict[str, list[dict]] = {k: [] for k in loops}
    for _ in range(args.runs):  # interleaved, so drift hits every loop alike
        for k, fn in loops.items():
            runs[k].append(fn())
    summary = {
        k: {
            key: mean(rs, key)
            for key in (
                "decode_tok_s",
                "harness_overhead_pct",
                "sampling_pct",
                "sampling_us_per_token",
                "engine_untimed_pct",
                "total_gap_pct",
                "gap_us_per_token",
                "harness_us_per_token",
            )
            if mean(rs, key) is not None
        }
        for k, rs in runs.items()
    }
    for k, rs in runs.items():  # a preempted run moves the mean; the median says what a quiet run costs
        for key in ("harness_overhead_pct", "total_gap_pct", "harness_us_per_token", "gap_us_per_token"):
            vals = [r[key] for r in rs if r.get(key) is not None]
            if vals:
                summary[k][key + "_median"] = round(statistics.median(vals), 4)
    overhead = summary["harness"]["harness_overhead_pct"]
    doc = {
        "bench": "throughput_overhead",
        "model": f"{args.arch} x{args.layers} layers {args.qtype}",
        "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
        "n_gpu_layers": args.n_gpu_layers,
        "weights_mib": round(info.weight_bytes / 2**20, 1),
        "threads": args.threads,
        "n_decode": args.n_decode,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": runs,
        "summary": summary,
        "overhead_pct_mean": overhead,
        "target_pct": 1.0,
        "ok": overhead < 1.0,
    }
    if args.compare:
        before, after = summary["before"]["total_gap_pct"], summary["harness"]["total_gap_pct"]
        doc["before_after_gap_ratio"] = round(before / after, 3) if after > 0 else None
        bm, am = summary["before"]["total_gap_pct_median"], summary["harness"]["total_gap_pct_median"]
        doc["before_after_gap_ratio_median"] = round(bm / am, 3) if am > 0 else None
    line = json.dumps(doc)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    h = summary["harness"]
    msg = (
        f"harness overhead {overhead:.3f} % (median {h['harness_overhead_pct_median']:.3f} %) of llama.cpp's "
        "decode time "
        f"({h['harness_us_per_token']:.1f} us/token, median {h['harness_us_per_token_median']:.1f}, "
        f"at {h['decode_tok_s']:.1f} tok/s; target < 1 %: "
        f"{'met' if overhead < 1.0 else 'NOT met'}); greedy sampling (argmax over the logits) "
        f"{h['sampling_pct']:.3f} % ({h['sampling_us_per_token']:.1f} us/token); "
        "llama.cpp's own untimed host work "
        f"{h['engine_untimed_pct']:.3f} %; total gap {h['total_gap_pct']:.3f} %"
    )
    if args.compare:
        b = summary["before"]
        msg += (
            f"; before (Llama.eval loop): total gap {b['total_gap_pct']:.3f} % "
            f"({b['gap_us_per_token']:.1f} us/token, median {b['gap_us_per_token_median']:.1f}), "
            f"before/after {doc['before_after_gap_ratio']}x (medians {doc['before_after_gap_ratio_median']}x)"
        )
    if args.watch:
        w = summary["harness+watches"]
        msg += f"; under the watches: harness overhead {w['harness_overhead_pct']:.3f} %"
    print(msg, file=sys.stderr)


if __name__ == "__main__":
    main()
