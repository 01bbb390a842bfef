"""ECMoE Task 2: quantization of MoE dispatch states — perplexity and reconstruction metrics.

One model load per process; one uncompressed pass gives the baseline perplexity and, through a
StateWatcher, the MSE / cosine / SNR of every (method, bits) on the response tokens' dispatch
states; then one hooked pass per (method, bits, router mode) gives its perplexity.

params:
    model, dtype, device_map, seed       see model_io
    sft_data: path to a JSONL of {"messages": [...]} records, or "synthetic" (n_synthetic records)
    split: test   split_seed: 42   max_samples: 50000   max_length: 2048   batch_size: 1
    methods: [absmax] (or method: absmax)   bits: [8, 4, 2] (or one int)   "none" = baseline only
    router_modes: [compressed, uncompressed]
    metric_tokens: response tokens per MoE block whose dispatch states feed the metrics (100000)

metrics:
    baseline.ppl  baseline.nll  n_response_tokens  n_sequences  n_moe_blocks  metric_tokens
    <method>_int<bits>.{mse, cosine, snr_db}
    <method>_int<bits>.<router mode>.{ppl, ppl_delta}          (delta = ppl - baseline.ppl)

Rows that share the model, data and batch size share one baseline pass per process (it is
deterministic); `info.baseline_pass` says whether this row computed it or reused it.
"""

from __future__ import annotations

import json
from typing import Literal, NamedTuple

from pydantic import StrictInt, field_validator

from ...errors import ManifestError
from ...results import RepResult, RunContext
from ...strict import PositiveInt
from . import model_io, sft
from .hooks import ROUTER_MODES, StateWatcher, attach_compression, find_moe_blocks
from .perplexity import evaluate
from .quantize import BITS, METHODS, check_bits, check_method

ALL_CONFIGS = [(m, b) for m in METHODS for b in BITS]


class Params(model_io.ModelParams):
    """A Task 2 row's params (the one owner of them; `pack validate` checks every row with it)."""

    sft_data: str = "synthetic"
    n_synthetic: PositiveInt = 200
    split: Literal["train", "val", "test"] = "test"
    split_seed: StrictInt = 42
    max_samples: PositiveInt = 50000
    max_length: PositiveInt = 2048
    batch_size: PositiveInt = 1
    method: str | None = None
    methods: str | list[str] | None = None
    bits: StrictInt | list[StrictInt] = [8, 4, 2]
    router_modes: str | list[str] = list(ROUTER_MODES)
    metric_tokens: PositiveInt = 100000

    @field_validator("method", "methods")
    @classmethod
    def _method(cls, v):
        try:
            for m in _as_list(v) if v is not None else []:
                if m != "none":
                    check_method(m)
        except ManifestError as e:  # pydantic turns ValueErrors into located errors
            raise ValueError(str(e)) from None
        return v

    @field_validator("router_modes")
    @classmethod
    def _modes(cls, v):
        for mode in _as_list(v):
            if mode not in ROUTER_MODES:
                raise ValueError(f"{mode!r} is not a router mode; use compressed or uncompressed")
        return v

    @field_validator("bits")
    @classmethod
    def _bits(cls, v):
        try:
            for b in _as_list(v):
                check_bits(b)
        except ManifestError as e:
            raise ValueError(str(e)) from None
        return v


def tag(method: str, bits: int) -> str:
    return f"{method}_int{bits}"


def _as_list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def parse_configs(params: dict) -> tuple[list[tuple[str, int]], list[str]]:
    """([(method, bits)], [router modes]) from params, every value checked before any work starts."""
    methods = _as_list(params.get("methods", params.get("method", "absmax")))
    if methods == ["none"]:
        return [], []
    methods = [check_method(m) for m in methods]
    bits = [check_bits(b) for b in _as_list(params.get("bits", [8, 4, 2]))]
    modes = _as_list(params.get("router_modes", list(ROUTER_MODES)))
    for mode in modes:
        if mode not in ROUTER_MODES:
            raise ManifestError(
                f"params.router_modes: {mode!r} is not a router mode; use compressed or uncompressed"
            )
    return [(m, b) for m in methods for b in bits], modes


def load_data(params: dict, ctx: RunContext, tok) -> tuple[list, dict]:
    spec = str(params.get("sft_data", "synthetic"))
    n_syn = int(params.get("n_synthetic", 200))
    path = model_io.resolve_data(spec, ctx, "sft", lambda p: sft.write_jsonl(sft.synthetic_records(n_syn), p))
    key = (
        "ecmoe.sft",
        str(path.resolve()),
        path.stat().st_mtime_ns if path.exists() else 0,
        id(tok),
        params.get("split", "test"),
        int(params.get("split_seed", 42)),
        int(params.get("max_samples", 50000)),
        int(params.get("max_length", 2048)),
    )
    if key not in ctx.cache:
        ctx.cache[key] = sft.load_examples(
            path,
            tok,
            split=params.get("split", "test"),
            seed=int(params.get("split_seed", 42)),
            max_samples=int(params.get("max_samples", 50000)),
            max_length=int(params.get("max_length", 2048)),
        )
    return ctx.cache[key]


class BaselinePass(NamedTuple):
    """The uncompressed pass shared by every Task 2 row of a process (named; unpacks positionally too)."""

    ppl: dict  # the perplexity result
    stats: dict  # {(method, bits): reconstruction statistics}
    how: str  # 'computed' | 'reused'


def baseline_pass(params: dict, ctx: RunContext, model, tok, blocks, examples, data_facts) -> BaselinePass:
    """The uncompressed pass's perplexity and every config's statistics, computed once per process."""
    key = (
        "ecmoe.baseline",
        model_io.model_key(params, ctx),
        tuple(sorted(data_facts.items())),
        int(params.get("batch_size", 1)),
        int(params.get("metric_tokens", 100000)),
    )
    if key in ctx.cache:
        return BaselinePass(*ctx.cache[key], "reused")
    watcher = StateWatcher(ALL_CONFIGS, int(params.get("metric_tokens", 100000)))
    with watcher.attach(blocks):
        ppl = evaluate(
            model,
            examples,
            batch_size=int(params.get("batch_size", 1)),
            pad_id=tok.pad_token_id,
            watcher=watcher,
            deadline=ctx.seconds_left,
        )
    stats = watcher.summary()
    ppl["metric_tokens"] = min(watcher.seen.values())
    ctx.cache[key] = (ppl, stats)
    return BaselinePass(ppl, stats, "computed")


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    configs, modes = parse_configs(params)
    if "model" not in params:
        raise ManifestError("an ECMoE row needs params.model (e.g. synthetic:tiny-qwen3-moe)")
    model, tok, _ = model_io.load_model(params, ctx)
    blocks = find_moe_blocks(model, str(params["model"]))
    examples, data_facts = load_data(params, ctx, tok)
    ctx.provenance.setdefault("sft_data", {})[str(params.get("sft_data", "synthetic"))] = data_facts
    ctx.log(f"{len(blocks)} MoE blocks; {len(examples)} {data_facts['split']} sequences")

    base, stats, how = baseline_pass(params, ctx, model, tok, blocks, examples, data_facts)
    res = RepResult(info={"baseline_pass": how, "data": data_facts, "router_modes": modes})
    res.metrics.update(
        {
            "baseline.ppl": base["ppl"],
            "baseline.nll": base["nll"],
            "n_response_tokens": base["n_response_tokens"],
            "n_sequences": base["n_sequences"],
            "n_moe_blocks": len(blocks),
            "metric_tokens": base["metric_tokens"],
        }
    )
    ctx.log(f"baseline ppl {base['ppl']:.4f} over {base['n_response_tokens']} response tokens ({how})")
    table = []
    for method, bits in configs:
        t = tag(method, bits)
        for name, value in stats[(method, bits)].items():
            res.metrics[f"{t}.{name}"] = value
        for mode in modes:
            with attach_compression(blocks, method, bits, mode):
                out = evaluate(
                    model,
                    examples,
                    batch_size=int(params.get("batch_size", 1)),
                    pad_id=tok.pad_token_id,
                    deadline=ctx.seconds_left,
                )
            if out["n_response_tokens"] != base["n_response_tokens"]:
                res.errors[f"{t}.{mode}"] = (
                    f"scored {out['n_response_tokens']} response tokens, the "
                    f"baseline {base['n_response_tokens']}; the comparison is void"
                )
                continue
            res.metrics[f"{t}.{mode}.ppl"] = out["ppl"]
            res.metrics[f"{t}.{mode}.ppl_delta"] = out["ppl"] - base["ppl"]
            ctx.log(f"{t} {mode}: ppl {out['ppl']:.4f} ({out['ppl'] - base['ppl']:+.4f})")
            table.append(
                {
                    "method": method,
                    "bits": bits,
                    "router_mode": mode,
                    "ppl": out["ppl"],
                    **stats[(method, bits)],
                }
            )
    (ctx.rep_dir / "task2.json").write_text(
        json.dumps({"baseline": base, "rows": table}, indent=2, default=float)
    )
    return res
