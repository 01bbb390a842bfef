"""Signals on disk (safetensors), their digest, and where two decodes first diverge.

Tensor names inside a file, for one decode stored under `prefix` (e.g. "baseline" in a repetition's
file, "H100_bs2/rep2" in an experiment's sidecar):

    {prefix}/tokens                          [S]        int64   greedy tokens of the reference row
    {prefix}/hidden_states/layer_{k}         [P, H]     model dtype (bf16 stays bf16: lossless)
    {prefix}/key_vectors/layer_{k}           [P, Kv*D]  model dtype, after RoPE
    {prefix}/logprobs/token_ids              [P, top_k] int64
    {prefix}/logprobs/log_probs              [P, top_k] float32

P unique positions, u = step + depth + position (see extraction.py). Two decodes are bit-identical
when their digests (sha256 over names, dtypes, shapes and raw bytes) are equal.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from .extraction import ExtractionSpec, Signals

SIGNAL_ORDER = ("hidden_states", "key_vectors", "logprobs")


def to_tensors(sig: Signals, prefix: str) -> dict:
    out = {f"{prefix}/tokens": sig.tokens.contiguous()}
    for k, t in sig.hidden.items():
        out[f"{prefix}/hidden_states/layer_{k}"] = t.contiguous()
    for k, t in sig.keys.items():
        out[f"{prefix}/key_vectors/layer_{k}"] = t.contiguous()
    out[f"{prefix}/logprobs/token_ids"] = sig.top_ids.contiguous()
    out[f"{prefix}/logprobs/log_probs"] = sig.top_logprobs.contiguous()
    return out


def from_tensors(tensors: dict, prefix: str, prompt_len: int = 0, runtime_s: float = 0.0) -> Signals:
    hidden, keys = {}, {}
    for name, t in tensors.items():
        if not name.startswith(prefix + "/"):
            continue
        rest = name[len(prefix) + 1 :]
        if rest.startswith("hidden_states/layer_"):
            hidden[int(rest.rsplit("_", 1)[1])] = t
        elif rest.startswith("key_vectors/layer_"):
            keys[int(rest.rsplit("_", 1)[1])] = t
    if f"{prefix}/tokens" not in tensors:
        raise KeyError(f"no signals stored under '{prefix}'")
    return Signals(
        tokens=tensors[f"{prefix}/tokens"],
        hidden=dict(sorted(hidden.items())),
        keys=dict(sorted(keys.items())),
        top_ids=tensors[f"{prefix}/logprobs/token_ids"],
        top_logprobs=tensors[f"{prefix}/logprobs/log_probs"],
        prompt_len=prompt_len,
        runtime_s=runtime_s,
    )


def raw_bytes(t) -> bytes:
    import torch

    t = t.detach().contiguous().cpu()
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def digest(sig: Signals) -> str:
    """sha256 over every tensor of one decode (prefix-independent)."""
    h = hashlib.sha256()
    for name, t in sorted(to_tensors(sig, "").items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(raw_bytes(t))
    return h.hexdigest()


def save(tensors: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write tensors atomically (temp file + rename, like every pack artifact)."""
    import os

    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata or {})
    os.replace(tmp, path)


def load(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@dataclass
class Divergence:
    """The first difference between two decodes, in decode order (step, then signal, layer, position)."""

    step: int
    signal: str  # hidden_states | key_vectors | logprobs | token
    layer: int | None
    position: int | None  # -3, -2, -1 (None for the generated token)
    max_abs_diff: float | None  # None where no number applies (different token ids)
    detail: str = ""

    def sentence(self) -> str:
        where = f"step {self.step}, {self.signal}"
        if self.layer is not None:
            where += f" layer {self.layer}"
        if self.position is not None:
            where += f" position {self.position}"
        diff = f"max |diff| {self.max_abs_diff:.6g}" if self.max_abs_diff is not None else "different"
        return f"{where}: {diff}" + (f" ({self.detail})" if self.detail else "")

    def to_json(self) -> dict:
        return asdict(self)


def first_divergence(a: Signals, b: Signals, spec: ExtractionSpec) -> Divergence | None:
    """None when a and b are bit-identical; else the earliest difference (decode order).

    At step 0 the prefill's positions -D..-1 appear, at step t >= 1 only the new position -1
    (earlier ones were compared at earlier steps); then the generated token of that step.
    """
    import torch

    def differs(x, y) -> float | None:
        if x.shape != y.shape or x.dtype != y.dtype:
            return float("inf")
        if torch.equal(
            x.view(torch.uint8) if x.is_floating_point() else x,
            y.view(torch.uint8) if y.is_floating_point() else y,
        ):
            return None
        return float((x.double() - y.double()).abs().max())

    d = spec.depth
    for step in range(spec.steps):
        new = range(d) if step == 0 else [step + d - 1]
        for u in new:
            pos = u - step - d
            for k in a.hidden:
                diff = differs(a.hidden[k][u], b.hidden[k][u])
                if diff is not None:
                    return Divergence(step, "hidden_states", k, pos, diff)
            for k in a.keys:
                diff = differs(a.keys[k][u], b.keys[k][u])
                if diff is not None:
                    return Divergence(step, "key_vectors", k, pos, diff)
            if not torch.equal(a.top_ids[u], b.top_ids[u]):
                return Divergence(step, "logprobs", None, pos, None, "top-k token ids differ")
            diff = differs(a.top_logprobs[u], b.top_logprobs[u])
            if diff is not None:
                return Divergence(step, "logprobs", None, pos, diff)
        if int(a.tokens[step]) != int(b.tokens[step]):
            return Divergence(
                step,
                "token",
                None,
                None,
                None,
                f"generated token {int(a.tokens[step])} vs {int(b.tokens[step])}",
            )
    return None
