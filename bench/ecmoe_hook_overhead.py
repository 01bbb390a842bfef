"""What the ECMoE pre-hooks cost beyond the quantize arithmetic itself (target: <= 5% of a pass).

One model, one fixed batch, four timings (medians of repetitions interleaved in shuffled order, so
drift and neighbour effects hit all alike):

    none     forward with no hooks
    noop     a pre-hook on every MoE block that returns its input (the hook machinery alone)
    int8     the absmax INT8 quantize -> dequantize pre-hook (compressed router mode)
    discard  a pre-hook that computes the same INT8 reconstruction and returns the input unchanged
    arith    the quantize -> dequantize of the same dispatch states in a loop outside the model

    quantize arithmetic, in the model   = discard - noop     (cold caches, as in a real pass)
    hook overhead beyond the arithmetic = (int8 - none - (discard - noop)) / none
    no-op hook overhead                 = (noop - none) / none   (also the run's noise floor)

    PYTHONPATH=. python bench/ecmoe_hook_overhead.py [--model tiny-qwen3-moe] [--device cpu] \
        [--batch 4 --seq 256]

Prints one JSON line (times in ms) and a verdict against the 5% target.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    import torch

    from pack.experiments.ecmoe.hooks import Hooks, attach_compression, attach_noop, find_moe_blocks
    from pack.experiments.ecmoe.quantize import quant_dequant
    from pack.models.synthetic import build_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-qwen3-moe")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--experts", default="eager", help="transformers experts implementation (eager on CPU)")
    ap.add_argument("--target", type=float, default=0.05)
    ap.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1 keeps timings steady on a shared machine)"
    )
    args = ap.parse_args()
    if not args.device.startswith("cuda"):
        torch.set_num_threads(args.threads)
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    model = build_model(args.model, dtype=dtype, device=args.device)
    if args.experts:
        model.set_experts_implementation(args.experts)
    blocks = find_moe_blocks(model, args.model)
    ids = torch.randint(
        0, model.config.vocab_size, (args.batch, args.seq), generator=torch.Generator().manual_seed(0)
    ).to(args.device)
    cuda = args.device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    states = []
    grab = [b.register_forward_pre_hook(lambda m, a: states.append(a[0].detach().clone())) for _, b in blocks]
    with torch.inference_mode():
        model(ids, use_cache=False)
    for h in grab:
        h.remove()

    def plain():
        with torch.inference_mode():
            model(ids, use_cache=False)

    def attach_discard():
        hooks = Hooks()

        def hook(module, args, kwargs):
            quant_dequant(args[0], "absmax", 8)  # the work of the INT8 hook, result thrown away
            return args, kwargs

        for _, b in blocks:
            hooks.handles.append(b.register_forward_pre_hook(hook, with_kwargs=True))
        return hooks

    attach = {
        "none": lambda: None,
        "noop": lambda: attach_noop(blocks),
        "discard": attach_discard,
        "int8": lambda: attach_compression(blocks, "absmax", 8, "compressed"),
    }

    def arith():
        with torch.inference_mode():
            for s in states:
                quant_dequant(s, "absmax", 8)

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    times = {k: [] for k in ("none", "noop", "int8", "discard", "arith")}
    for _ in range(2):  # warm-up
        plain()
        arith()
    rng = random.Random(0)
    for _ in range(args.reps):
        order = list(times)
        rng.shuffle(order)  # a fixed neighbour order biases a variant (caches, allocator); shuffle it away
        for kind in order:
            if kind == "arith":
                times[kind].append(timed(arith))
                continue
            hooks = attach[kind]()
            times[kind].append(timed(plain))
            if hooks is not None:
                hooks.remove()
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    in_model = med["discard"] - med["noop"]
    beyond = (med["int8"] - med["none"] - in_model) / med["none"]
    noop = (med["noop"] - med["none"]) / med["none"]
    out = {
        "model": args.model,
        "device": args.device,
        "dtype": dtype,
        "batch": [args.batch, args.seq],
        "reps": args.reps,
        "moe_blocks": len(blocks),
        "threads": torch.get_num_threads(),
        "ms": {k: round(v, 3) for k, v in med.items()},
        "arith_in_model_ms": round(in_model, 3),
        "noop_overhead": round(noop, 4),
        "hook_overhead_beyond_arith": round(beyond, 4),
        "int8_total_overhead": round((med["int8"] - med["none"]) / med["none"], 4),
    }
    print(json.dumps(out))
    ok = beyond <= args.target
    print(
        f"hook overhead beyond the quantize arithmetic: {100 * beyond:+.2f}% of a pass (no-op hook "
        f"{100 * noop:+.2f}%); target <= {100 * args.target:g}%: {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
