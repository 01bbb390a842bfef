"""ECMoE Task 1 (experiment `ecmoe_distribution`): distribution statistics of the MoE dispatch states.

One pass over SFT sequences (the train split, as the journal's collection draws from it) caches the
response tokens' dispatch states (block inputs) and, with `gather: true`, the block outputs the
experts send back; dispatch_stats.py turns each block's states into statistics.

params:
    model, dtype, device_map, seed       see model_io
    sft_data: JSONL path or "synthetic" (n_synthetic records)   split: train   split_seed: 42
    max_samples: 10000   max_length: 2048   batch_size: 1
    max_tokens: 100000   response tokens kept per block (the journal: 100,000)
    gather: true         also the outputs of every block
    outlier_sigma: 6.0   the outlier threshold in standard deviations

metrics:
    n_moe_blocks  n_tokens  baseline.ppl (of the collection split)
    dispatch.L<ii>.{mean, std, kurtosis, absmax, outlier_frac, eff_rank}   (gather.L<ii>.* likewise)
    dispatch.{std_first_layer, std_last_layer, kurtosis_max, eff_rank_min}

Artifact: distribution.json (every statistic per layer).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from ...errors import ManifestError
from ...results import RepResult, RunContext
from ...strict import PositiveInt
from ..params import parse
from . import model_io


class Params(model_io.ModelParams):
    """A Task 1 row's params (the one owner of them)."""

    sft_data: str = "synthetic"
    n_synthetic: PositiveInt = 200
    split: Literal["train", "val", "test"] = "train"
    split_seed: StrictInt = 42
    max_samples: PositiveInt = 10000
    max_length: PositiveInt = 2048
    batch_size: PositiveInt = 1
    max_tokens: PositiveInt = 100000
    gather: StrictBool = True
    outlier_sigma: Annotated[StrictFloat | StrictInt, Field(gt=0)] = 6.0


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    from . import dispatch_stats
    from .hooks import find_moe_blocks
    from .perplexity import evaluate
    from .state_cache import StateCache
    from .task2 import load_data

    if "model" not in params:
        raise ManifestError("an ECMoE row needs params.model (e.g. synthetic:tiny-qwen3-moe)")
    p = parse(Params, params, "ecmoe_distribution")
    model, tok, _ = model_io.load_model(params, ctx)
    blocks = find_moe_blocks(model, p.model)
    examples, facts = load_data({**params, "split": p.split, "max_samples": p.max_samples}, ctx, tok)
    ctx.provenance.setdefault("sft_data", {})[p.sft_data] = facts
    cache = StateCache(p.max_tokens, gather=p.gather)
    with cache.attach(blocks):
        ppl = evaluate(
            model,
            examples,
            batch_size=p.batch_size,
            pad_id=tok.pad_token_id,
            watcher=cache,
            deadline=ctx.seconds_left,
        )
    res = RepResult(info={"data": facts})
    res.metrics.update({"n_moe_blocks": len(blocks), "n_tokens": cache.tokens(), "baseline.ppl": ppl["ppl"]})
    table = {}
    kinds = [("dispatch", cache.states())] + ([("gather", cache.gathered_states())] if p.gather else [])
    for kind, states in kinds:
        per_layer = {i: dispatch_stats.layer_stats(x, float(p.outlier_sigma)) for i, x in states.items()}
        for i, stats in per_layer.items():
            for name, value in stats.items():
                res.metrics[f"{kind}.L{i:02d}.{name}"] = value
        for name, value in dispatch_stats.summarize(per_layer).items():
            res.metrics[f"{kind}.{name}"] = value
        table[kind] = {blocks[i][0]: v for i, v in per_layer.items()}
    ctx.log(
        f"{len(blocks)} MoE blocks, {cache.tokens()} response tokens each; dispatch std "
        f"{res.metrics.get('dispatch.std_first_layer', float('nan')):.4g} (first) -> "
        f"{res.metrics.get('dispatch.std_last_layer', float('nan')):.4g} (last)"
    )
    (ctx.rep_dir / "distribution.json").write_text(json.dumps(table, indent=2))
    return res
