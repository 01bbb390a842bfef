"""Experiment `ecmoe_ep_traffic` (seed 004, Task 8): bytes the expert-parallel dispatch sends per
token with and without the journal's compressors, from real encoded messages.

The journal's 2026-02-24 entry states "Communication savings: perlayer 4x=75%, stale(uncomp)
4x=67%" and "Stale broadcast cost amortized over ~11 non-reference layers". This row recomputes
them from the layout it describes instead of echoing them:

- uncompressed: every MoE layer dispatches its input, [tokens, hidden_dim];
- perlayer (Tasks 3b/5a/6a/7a): every layer dispatches the compressed tensor, [tokens, hidden_dim / r];
- stale (uncompressed stale, Tasks 4b/5b/6b/7b): a reference layer (every `ref_stride`-th, from
  layer 0) dispatches its compressed tensor with the raw stale signal concatenated,
  [tokens, hidden_dim / r + hidden_dim]; the other layers dispatch only [tokens, hidden_dim / r].

Each message is built with seed 002's wire accounting (`pack.experiments.wire_compression.encode`:
a 16-byte header, then the payload; fp16 is two bytes a value, the size of the bfloat16 the model
dispatches) and its length is measured, header included, then decoded again to check it holds the
values it claims. saving = 1 - compressed bytes / uncompressed bytes over all layers of one step.

A check, not a vLLM measurement: it verifies the journal's arithmetic on its stated layout (48
layers, hidden 2048, stride 12). What vLLM actually sends is the `task8-ep-vllm` row (4 GPUs).

params (`Params`): hidden_dim, n_layers, ref_stride, ratios, tokens (per dispatch message),
        wire_format (fp16 | int8 | int6 | int4: the encoding of every message), group_size, seed;
        model / dtype / device_map / experts_implementation come from the manifest's defaults, unused.
metrics: uncompressed.bytes_per_token, <method>_<r>x.bytes_per_token, <method>_<r>x.saving_pct
         (method perlayer | stale), stale.ref_layers, stale.amortization_layers (non-reference
         layers per reference layer).
"""

from __future__ import annotations

import json

import numpy as np
from pydantic import StrictInt, field_validator, model_validator

from ...results import RepResult, RunContext
from ...strict import PositiveInt, Strict
from .. import wire_compression as wire
from ..params import parse


class Params(Strict):
    """An EP-traffic row's params (the one owner of them)."""

    hidden_dim: PositiveInt = 2048
    n_layers: PositiveInt = 48
    ref_stride: PositiveInt = 12
    ratios: list[PositiveInt] = [2, 4, 8, 16]
    tokens: PositiveInt = 1024
    wire_format: str = "fp16"
    group_size: PositiveInt = 32
    seed: StrictInt = 0
    # Inherited from manifests/ecmoe.yaml's defaults and unused: the layout is hidden_dim / n_layers,
    # and the bytes come from wire_format, not from the dtype a model would be loaded in.
    model: str | None = None
    dtype: str | None = None
    device_map: str | None = None
    experts_implementation: str | None = None

    @field_validator("wire_format")
    @classmethod
    def _format(cls, v):
        if v not in wire.BITS:
            raise ValueError(f"unknown wire_format {v!r}; use one of {', '.join(wire.BITS)}")
        return v

    @model_validator(mode="after")
    def _ratios_divide(self):
        bad = [r for r in self.ratios if self.hidden_dim % r]
        if bad:
            raise ValueError(f"ratio {bad[0]} does not divide hidden_dim {self.hidden_dim}")
        if not self.ratios:
            raise ValueError("list at least one compression ratio")
        return self


def ref_layers(n_layers: int, stride: int) -> list[int]:
    """Reference layers: 0, stride, 2*stride, ... (the journal's {0, 12, 24, 36} for 48 / 12)."""
    return list(range(0, n_layers, stride))


def widths(p: Params, method: str, ratio: int) -> list[int]:
    """The dispatched width of every layer's message for one method and ratio."""
    if method == "uncompressed":
        return [p.hidden_dim] * p.n_layers
    b = p.hidden_dim // ratio
    if method == "perlayer":
        return [b] * p.n_layers
    refs = set(ref_layers(p.n_layers, p.ref_stride))
    return [b + p.hidden_dim if i in refs else b for i in range(p.n_layers)]


def step_bytes(p: Params, layer_widths: list[int], rng: np.random.Generator) -> int:
    """Bytes of one forward step's dispatch: every layer's message encoded, measured and decoded."""
    total = 0
    for w in layer_widths:
        x = rng.standard_normal((p.tokens, w)).astype(np.float32)
        msg = wire.encode(x, p.wire_format, p.group_size)
        back = wire.decode(msg)
        if back.shape != x.shape:  # the message must carry what it claims, not just be counted
            raise AssertionError(f"a {x.shape} message decoded to {back.shape}")
        total += len(msg)
    return total


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    p = parse(Params, params, "ecmoe-ep-traffic")
    rng = np.random.default_rng(p.seed)
    res = RepResult()
    base = step_bytes(p, widths(p, "uncompressed", 1), rng)
    res.metrics["uncompressed.bytes_per_token"] = base / p.tokens
    table = [{"method": "uncompressed", "ratio": 1, "bytes": base, "saving_pct": 0.0}]
    for method in ("perlayer", "stale"):
        for r in p.ratios:
            got = step_bytes(p, widths(p, method, r), rng)
            saving = 100.0 * (1.0 - got / base)
            res.metrics[f"{method}_{r}x.bytes_per_token"] = got / p.tokens
            res.metrics[f"{method}_{r}x.saving_pct"] = saving
            table.append({"method": method, "ratio": r, "bytes": got, "saving_pct": saving})
    refs = ref_layers(p.n_layers, p.ref_stride)
    res.metrics["stale.ref_layers"] = len(refs)
    res.metrics["stale.amortization_layers"] = (p.n_layers - len(refs)) / len(refs)
    res.info = {"ref_layers": refs, "message_header_bytes": wire.HEADER.size}
    (ctx.rep_dir / "ep_traffic.json").write_text(json.dumps(table, indent=2))
    ctx.log("; ".join(f"{t['method']} {t['ratio']}x: {t['saving_pct']:.2f}% saved" for t in table[1:]))
    return res
