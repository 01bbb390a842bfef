"""Harness overhead against llama.cpp's own decode time (target: under 1 %).

    python bench/throughput_overhead.py [--layers 4] [--runs 3] [--threads N]

Writes (once, cached) a random-initialised Llama of TinyLlama-1.1B's width with `--layers` layers
as an F16 GGUF, loads it with llama-cpp-python and runs the backend's timed decode (Paper B's prompt,
32 greedy tokens) `--runs` times. For each run:

    overhead % = 100 * (harness wall clock of the decode loop - llama.cpp's t_eval) / llama.cpp's t_eval

i.e. what the Python loop (argmax over the logits, batch setup, the ctypes calls) adds on top of
llama.cpp's own decode time. Prints one JSON line with the per-run figures and the mean.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n-decode", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--n-gpu-layers", type=int, default=0, help="-1: every layer on the GPU (a CUDA build)")
    ap.add_argument("--qtype", default="F16", choices=["F32", "F16", "Q8_0"])
    args = ap.parse_args()

    import llama_cpp

    from pack.experiments.throughput.harness import DEFAULT_PROMPT
    from pack.experiments.throughput.llamacpp import _greedy_decode
    from pack.models.gguf import check_gguf, synthetic_gguf
    from pack.models.synthetic import arch

    # The arch's own layer count writes the same cached file a row with model synthetic:mid-llama uses.
    layers = (
        {} if args.layers == arch("mid-llama")["num_hidden_layers"] else {"num_hidden_layers": args.layers}
    )
    path = synthetic_gguf("mid-llama", qtype=args.qtype, **layers)
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
    tokens = llm.tokenize(DEFAULT_PROMPT.encode(), add_bos=True)
    _greedy_decode(llm, tokens, args.n_decode)  # warm-up
    runs = []
    for _ in range(args.runs):
        r = _greedy_decode(llm, tokens, args.n_decode)
        runs.append(
            {
                "decode_tok_s": r["decode_tok_s"],
                "decode_wall_tok_s": r["decode_wall_tok_s"],
                "harness_overhead_pct": r["harness_overhead_pct"],
            }
        )
    mean = statistics.fmean(r["harness_overhead_pct"] for r in runs)
    print(
        json.dumps(
            {
                "bench": "throughput_overhead",
                "model": f"mid-llama x{args.layers} layers {args.qtype}",
                "n_gpu_layers": args.n_gpu_layers,
                "weights_mib": round(info.weight_bytes / 2**20, 1),
                "threads": args.threads,
                "n_decode": args.n_decode,
                "runs": runs,
                "overhead_pct_mean": round(mean, 4),
                "target_pct": 1.0,
                "ok": mean < 1.0,
            }
        )
    )


if __name__ == "__main__":
    main()
