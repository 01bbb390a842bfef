"""Greedy decoding with (or without) signal extraction, on any transformers causal LM with a KV cache.

Conventions (docs/forensics.md repeats them):

- Decode step t (0-based) is the forward pass that produces generated token t: step 0 is the
  prefill over the whole prompt (length L), step t >= 1 feeds generated token t-1 at absolute
  position L+t-1. A run of S steps is 1 prefill + S-1 single-token forward passes.
- Position -j at step t is absolute position L+t-j: -1 is the position this step computes, -2 and
  -3 are the positions before it. With a KV cache, positions -2/-3 are not recomputed: their
  hidden states and keys are the values computed when they were position -1 (or in the prefill).
  Each vector therefore exists once, and is stored once: P = S + D - 1 unique positions for
  depth D = max(-positions) (32 for 30 steps and positions -3..-1); unique index u = t + D - j.
- Hidden states: `layer_k` is transformers' `output_hidden_states[k]`: index 0 would be the
  embedding output (not extracted: it has no keys), k in 1..n_layers-1 is the output of decoder
  block k (the residual stream), and k = n_layers ("last") is the final RMSNorm's output, because
  transformers ties hidden_states[-1] to last_hidden_state. Captured with forward hooks on those
  modules (not output_hidden_states, which would keep every layer's [L, hidden] prefill activations
  alive at once). Under torch.compile, dynamo traces the hooks into the graph: a hook that appended
  to a list made dynamo guard on the list's length, so every decode step recompiled until dynamo's
  recompile limit (8) and the later steps ran EAGERLY under the compile label (2026-12-04, torch
  2.13 CPU, a 4-layer Llama: 8 graphs for 12 steps, 3 without hooks; SmolLM2 on the H200 too). The
  hooks therefore only overwrite one slot per module, and the decode loop moves the slots into their
  lists after each forward pass, outside the compiled region: 3 graphs again.
- Keys: the attention keys of decoder block k (cache layer k-1), AFTER RoPE (and after Qwen3's
  k_norm), exactly as stored in the KV cache; all KV heads concatenated head-major:
  [n_kv_heads * head_dim].
- Log-probabilities: log_softmax in float32 of the logits at that position, top-k ids and values
  (descending). For the prefill's positions -D..-2 the logits are lm_head applied to the captured
  final-norm outputs, so the model's own forward keeps logits_to_keep=1 and decodes exactly the
  same tokens with and without extraction.
- Batches: only batch row 0 (the reference sequence) is extracted; greedy argmax runs per row.
  EOS does not stop decoding: every configuration decodes exactly S steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import PackError


@dataclass(frozen=True)
class ExtractionSpec:
    layers: tuple[int, ...]  # 1..n_layers, resolved ("last" -> n_layers)
    positions: tuple[int, ...]  # negative, e.g. (-3, -2, -1)
    top_k: int
    steps: int

    @property
    def depth(self) -> int:
        return max(-p for p in self.positions)

    @property
    def n_unique(self) -> int:
        return self.steps + self.depth - 1

    def unique_index(self, step: int, position: int) -> int:
        return step + self.depth + position  # position is negative: -1 -> step + D - 1


def resolve_layers(layers, n_layers: int, model_name: str = "the model") -> tuple[int, ...]:
    """[1, 2, 4, 12, "last"] -> ints, refusing indices the model does not have."""
    out = []
    for x in layers:
        k = n_layers if x == "last" else x
        if isinstance(k, bool) or not isinstance(k, int):
            raise PackError(f"layer {x!r} is not an integer or 'last'")
        if k == 0:
            raise PackError(
                f"layer 0 is the embedding output, which has no attention keys; {model_name} "
                f"has {n_layers} decoder layers, use 1..{n_layers} or 'last'"
            )
        if not 1 <= k <= n_layers:
            raise PackError(
                f"layer {k} is beyond {model_name}, which has {n_layers} decoder layers "
                f"(valid: 1..{n_layers} or 'last')"
            )
        if k not in out:
            out.append(k)
    return tuple(out)


def check_positions(positions) -> tuple[int, ...]:
    if not positions or any(
        isinstance(p, bool) or not isinstance(p, int) or p >= 0 or p < -16 for p in positions
    ):
        raise PackError(
            f"positions {positions!r} must be negative integers between -16 and -1, e.g. [-3, -2, -1]"
        )
    return tuple(sorted(set(positions)))


@dataclass
class Signals:
    """What one decode of the reference sequence produced (CPU tensors).

    tokens [S] int64 · hidden {layer: [P, hidden_size]} · keys {layer: [P, n_kv*head_dim]} in the
    model's dtype · top_ids [P, k] int64 · top_logprobs [P, k] float32 · P = spec.n_unique.
    """

    tokens: Any
    hidden: dict
    keys: dict
    top_ids: Any
    top_logprobs: Any
    prompt_len: int
    runtime_s: float = 0.0
    batch_tokens: Any = None  # [B, S] every row's greedy tokens (not stored; for checks)


@dataclass
class _Recorder:
    """Forward hooks that keep row 0's last `depth` positions of selected modules' outputs.

    A hook only overwrites `slots[key]` (no list grows inside a possibly compiled forward pass, see
    the module's docstring); `collect()` after each forward pass moves the slots into `buffers`.
    """

    depth: int
    handles: list = field(default_factory=list)
    buffers: dict = field(default_factory=dict)
    slots: dict = field(default_factory=dict)

    def hook(self, key):
        def fn(module, args, out):
            h = out[0] if isinstance(out, tuple) else out
            row = h[0, -self.depth :].detach()
            # Prefill: copy, so the [L, hidden] activation is not kept alive; decode: the output is
            # already a fresh [1, hidden] tensor, and a view costs nothing.
            self.slots[key] = row.clone() if h.shape[1] > self.depth else row

        return fn

    def collect(self):
        """Move what the last forward pass captured into the buffers; refuse a hook that did not fire."""
        for key, buf in self.buffers.items():
            if key not in self.slots:
                raise PackError(f"extraction: the hook on {key!r} did not fire in a forward pass")
            buf.append(self.slots.pop(key))

    def attach(self, base, layers: tuple[int, ...]):
        n = base.config.num_hidden_layers
        decoder = base.model
        targets = {k: decoder.layers[k - 1] for k in layers if k < n}
        targets["norm"] = decoder.norm  # hidden_states[n] and the prefill logits of positions -D..-2
        for key, module in targets.items():
            self.buffers[key] = []
            self.handles.append(module.register_forward_hook(self.hook(key)))
        return self

    def detach(self):
        for h in self.handles:
            h.remove()
        self.handles.clear()


def local_keys(cache, layer_index: int, last: int):
    """Row 0's keys of the last `last` positions of one cache layer: [last, n_kv * head_dim]."""
    k = cache.layers[layer_index].keys[0, :, -last:, :]  # [n_kv, last, head_dim]
    return k.permute(1, 0, 2).reshape(k.shape[1], -1).clone()


def _topk(logits, k: int):
    import torch

    lp = torch.log_softmax(logits.float(), dim=-1)
    v, i = torch.topk(lp, k, dim=-1)
    return i, v


def greedy_decode(
    model,
    input_ids,
    spec: ExtractionSpec | None,
    *,
    steps: int | None = None,
    key_reader: Callable | None = None,
    synchronize: Callable | None = None,
) -> Signals:
    """Decode `steps` greedy tokens for input_ids [B, L]; extract signals when spec is given.

    model may be a torch.compile wrapper (hooks go on the wrapped module). key_reader(cache, layer
    index, last) replaces local_keys under tensor parallelism (gathers the heads of all ranks).
    """
    import torch
    from transformers import DynamicCache

    base = getattr(model, "_orig_mod", model)
    steps = spec.steps if spec is not None else steps
    if not steps or steps < 1:
        raise PackError("decode_steps must be at least 1")
    if spec is not None and input_ids.shape[1] < spec.depth:
        raise PackError(
            f"the prompt has {input_ids.shape[1]} tokens, fewer than position -{spec.depth} needs"
        )
    key_reader = key_reader or local_keys
    rec = _Recorder(spec.depth).attach(base, spec.layers) if spec is not None else None
    keys: dict = {}
    rows: list = []  # row 0's logits per position, reduced to top-k once at the end
    cache = DynamicCache(config=base.config)
    generated = []
    sync = synchronize or (lambda: torch.cuda.synchronize() if input_ids.is_cuda else None)
    try:
        with torch.no_grad():
            sync()
            t0 = time.perf_counter()
            out = model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            if rec is not None:
                rec.collect()
            for step in range(steps):
                last = out.logits[:, -1, :]
                nxt = last.argmax(dim=-1)
                generated.append(nxt)
                if spec is not None:
                    if step == 0 and spec.depth > 1:  # logits of prefill positions -D..-2
                        normed = rec.buffers["norm"][0][: spec.depth - 1]
                        rows.append(base.lm_head(normed.unsqueeze(0))[0])
                    rows.append(last[0:1])
                if step + 1 < steps:
                    out = model(input_ids=nxt[:, None], past_key_values=cache, use_cache=True)
                    if rec is not None:
                        rec.collect()
            if spec is not None:
                # Keys never change once cached: the last P cache positions are exactly the P unique
                # positions (the final token is never fed), so they are read once, after decoding.
                for k in spec.layers:
                    if cache.layers[k - 1].keys.shape[-2] < spec.n_unique:
                        raise PackError(
                            f"the KV cache of layer {k} keeps fewer than {spec.n_unique} positions "
                            f"(a sliding-window cache?); keys cannot be read back"
                        )
                    keys[k] = key_reader(cache, k - 1, spec.n_unique)
                top_ids, top_lp = _topk(torch.cat(rows, dim=0), spec.top_k)
            sync()
            runtime = time.perf_counter() - t0
    finally:
        if rec is not None:
            rec.detach()
    batch_tokens = torch.stack(generated, dim=1).cpu()
    if spec is None:
        return Signals(
            tokens=batch_tokens[0],
            hidden={},
            keys={},
            top_ids=None,
            top_logprobs=None,
            prompt_len=int(input_ids.shape[1]),
            runtime_s=runtime,
            batch_tokens=batch_tokens,
        )
    n = base.config.num_hidden_layers
    hidden = {k: torch.cat(rec.buffers["norm" if k == n else k], dim=0).cpu() for k in spec.layers}
    sig = Signals(
        tokens=batch_tokens[0],
        hidden=hidden,
        keys={k: v.cpu() for k, v in keys.items()},
        top_ids=top_ids.cpu(),
        top_logprobs=top_lp.cpu(),
        prompt_len=int(input_ids.shape[1]),
        runtime_s=runtime,
        batch_tokens=batch_tokens,
    )
    for name, t in [("hidden", next(iter(hidden.values()))), ("top_ids", sig.top_ids)]:
        if t.shape[0] != spec.n_unique:  # a hook fired more or less often than one forward per step
            raise PackError(f"extraction captured {t.shape[0]} positions of {name}, expected {spec.n_unique}")
    return sig
