"""Extraction overhead: the same greedy decode with and without signal extraction, same process.

    PYTHONPATH=. python bench/forensics_overhead.py                       # CPU, tiny synthetic model
    PYTHONPATH=. python bench/forensics_overhead.py --model synthetic:mid-qwen3-moe --device cuda \\
        --prompt-tokens 6000 --steps 30 --rounds 5 --json overhead.json   # the GPU target (<= 5%)

Both variants run the identical decode loop (pack.experiments.forensics.extraction.greedy_decode):
with extraction it adds forward hooks on the extracted layers, KV-cache key reads and top-k
log-probabilities. Rounds alternate (with, without) after a warm-up of each, the median of each
side is compared, and the generated tokens must be identical. Prints one line with the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="synthetic:tiny-qwen3-moe")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads on a CPU")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args(argv)

    import torch

    from pack.experiments.forensics.extraction import ExtractionSpec, greedy_decode, resolve_layers
    from pack.experiments.forensics.prompts import build_prompt
    from pack.models.sources import load_causal_lm

    if a.device == "cpu":
        torch.set_num_threads(a.threads)
    loaded = load_causal_lm(a.model, dtype=a.dtype, device=a.device, attention="auto")
    n_layers = loaded.model.config.num_hidden_layers
    spec = ExtractionSpec(
        layers=resolve_layers([1, 2, 4, 12, "last"], n_layers, a.model),
        positions=(-3, -2, -1),
        top_k=10,
        steps=a.steps,
    )
    prompt = build_prompt(loaded.tokenizer, a.prompt_tokens)
    ids = torch.tensor([prompt.token_ids], device=a.device)
    run = {
        "with": lambda: greedy_decode(loaded.model, ids, spec),
        "without": lambda: greedy_decode(loaded.model, ids, None, steps=a.steps),
    }
    tokens = {k: f().tokens.tolist() for k, f in run.items()}  # warm-up (kernels, allocator, lazy init)
    times: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(a.rounds):
        for k in ("without", "with"):
            sig = run[k]()
            times[k].append(sig.runtime_s)
            if sig.tokens.tolist() != tokens[k]:
                tokens[k] = None  # a repetition decoded different tokens: report it
    same = tokens["with"] is not None and tokens["with"] == tokens["without"]
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["with"] / med["without"]
    out = {
        "model": a.model,
        "device": a.device,
        "gpu": torch.cuda.get_device_name(0) if a.device == "cuda" else None,
        "prompt_tokens": len(prompt.token_ids),
        "steps": a.steps,
        "rounds": a.rounds,
        "median_s_with": med["with"],
        "median_s_without": med["without"],
        "overhead_ratio": ratio,
        "overhead_percent": (ratio - 1) * 100,
        "same_tokens": same,
        "times_s": times,
    }
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    print(
        f"extraction overhead: {out['overhead_percent']:+.2f}% (median {med['with']:.4f}s with vs "
        f"{med['without']:.4f}s without, {a.rounds} rounds, {len(prompt.token_ids)}-token prompt, {a.steps} "
        f"steps, {a.model} on {out['gpu'] or a.device}); same greedy tokens: {'yes' if same else 'NO'}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
