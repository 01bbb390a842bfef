"""Storage: one run's signals in the safetensors sidecar vs the same content in the seed's JSON layout.

    PYTHONPATH=. python bench/forensics_storage.py                      # a real tiny-model decode (CPU)
    PYTHONPATH=. python bench/forensics_storage.py --shape qwen3-30b-a3b  # random bf16 values at true dims
    PYTHONPATH=. python bench/forensics_storage.py --file runs/.../summary/reference_baseline.json

The seed's bytes are `json.dumps` (default separators, no indent: the smallest honest reading of
the seed's layout) of one run's `decode_steps` as `pack export --format seed-json` writes them:
30 steps x (5 layers x 3 positions of hidden states and keys + 3 top-k log-prob entries). The
sidecar bytes are a safetensors file of the same run's tensors (unique positions, model dtype).
Target: ratio <= 0.25. Prints one line with the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def ratio_for(tensors: dict, key: str, spec, layers, tokens) -> tuple[int, int]:
    """(sidecar bytes, seed-json bytes) of one decode stored under `key`."""
    from safetensors.torch import save

    from pack.experiments.forensics import uniform

    one = {n: t for n, t in tensors.items() if n.startswith(key + "/")}
    doc = {
        "experiment_metadata": {
            "decode_steps": spec.steps,
            "extraction_config": {"positions": list(spec.positions), "layers": list(layers)},
        },
        "configurations": [],
        "runs": [
            {
                "config_id": "c",
                "rep_id": 0,
                "signals_key": key,
                "decode_steps": [
                    {"step": t, "token_id": int(i), "token_text": ""} for t, i in enumerate(tokens)
                ],
            }
        ],
    }
    steps = uniform.expand(doc, one, all_reps=True)["runs"][0]["decode_steps"]
    return len(save(one)), len(json.dumps(steps).encode())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--shape", help="synthetic architecture for random values at its true dims (no model run)"
    )
    ap.add_argument("--file", type=Path, help="a forensics uniform JSON (compact) from a run")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    import torch

    from pack.experiments.forensics import signals as sigmod
    from pack.experiments.forensics.extraction import ExtractionSpec, Signals, greedy_decode, resolve_layers

    if a.file:
        from pack.experiments.forensics import summary, uniform

        doc, tensors = uniform.read(a.file)
        r, side, seed = summary._storage_ratio(doc, tensors)
        source = str(a.file)
    else:
        if a.shape:
            from pack.models.synthetic import arch

            cfg = arch(a.shape)
            layers = resolve_layers([1, 2, 4, 12, "last"], cfg["num_hidden_layers"], a.shape)
            spec = ExtractionSpec(layers=layers, positions=(-3, -2, -1), top_k=10, steps=a.steps)
            g = torch.Generator().manual_seed(0)
            kd = cfg["num_key_value_heads"] * cfg["head_dim"]
            sig = Signals(
                tokens=torch.randint(0, cfg["vocab_size"], (spec.steps,), generator=g),
                hidden={
                    k: torch.randn(spec.n_unique, cfg["hidden_size"], generator=g).bfloat16() for k in layers
                },
                keys={k: torch.randn(spec.n_unique, kd, generator=g).bfloat16() for k in layers},
                top_ids=torch.randint(0, cfg["vocab_size"], (spec.n_unique, 10), generator=g),
                top_logprobs=-torch.rand(spec.n_unique, 10, generator=g).sort(dim=1).values * 10,
                prompt_len=0,
            )
            source = f"random bf16 values at {a.shape} dims (hidden {cfg['hidden_size']}, keys {kd})"
        else:
            from pack.experiments.forensics.prompts import build_prompt
            from pack.models.sources import load_causal_lm

            torch.set_num_threads(1)
            loaded = load_causal_lm(
                "synthetic:tiny-qwen3-moe", dtype="bfloat16", device="cpu", attention="sdpa"
            )
            layers = resolve_layers([1, 2, 4, 12, "last"], loaded.model.config.num_hidden_layers)
            spec = ExtractionSpec(layers=layers, positions=(-3, -2, -1), top_k=10, steps=a.steps)
            ids = torch.tensor([build_prompt(loaded.tokenizer, 128).token_ids])
            sig = greedy_decode(loaded.model, ids, spec)
            source = "a real tiny-qwen3-moe decode (hidden 64, keys 32, bf16)"
        tensors = sigmod.to_tensors(sig, "run")
        side, seed = ratio_for(tensors, "run", spec, layers, sig.tokens.tolist())
        r = side / seed
    out = {"source": source, "sidecar_bytes": side, "seed_json_bytes": seed, "ratio": r, "target": 0.25}
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    print(
        f"storage: sidecar {side} B vs seed JSON {seed} B = {r:.4f} of the seed's bytes "
        f"({'within' if r <= 0.25 else 'ABOVE'} the 0.25 target); {source}"
    )
    return 0 if r <= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
