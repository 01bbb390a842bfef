"""Seed 003 (PR #682): the int6 clip-search quantizer against per-row int8, measured as
zlib-compressed state-dict bytes and round-trip error.

int8:  per row, scale = max|w| / 127, q = round(w / scale) in [-127, 127]
int6:  per row, for each clip percentile p in `percentiles` (5 by default): clip = quantile(|w|, p),
       scale = clip / 31, q = clamp(round(w / scale), -31, 31); keep the p with the lowest MSE.
Both store q as int8 and scales as fp16; tensors that are not 2-D (norm gains, scalars) stay fp16,
as in the PR's export. The container is the tensors' raw bytes in sorted-name order with a small
text header each, compressed with zlib level 9 (the PR's export path: serialize, then zlib).

params: checkpoint ("synthetic" or a .safetensors / .npz / .pt state dict), and for synthetic:
        layers, d_model, vocab, heads, kv_heads, mlp_mult, seed; percentiles.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import numpy as np

from ..errors import ManifestError
from ..results import RepResult, RunContext

PERCENTILES = [0.999, 0.9995, 0.9999, 0.99999, 1.0]


def synthetic_state_dict(layers: int, d: int, vocab: int, heads: int, kv_heads: int, mlp_mult: float, seed: int) -> dict:
    """A GPT-style state dict (the PR's 9-layer shape at full scale), normal init scaled by 1/sqrt(fan_in)."""
    rng = np.random.default_rng(seed)
    head_dim = d // heads
    hidden = int(mlp_mult * d)

    def w(out_f, in_f):
        return (rng.standard_normal((out_f, in_f)) / np.sqrt(in_f)).astype(np.float32)

    sd = {"tok_emb.weight": (rng.standard_normal((vocab, d)) * 0.02).astype(np.float32)}
    for i in range(layers):
        p = f"blocks.{i}."
        sd[p + "attn.q.weight"] = w(d, d)
        sd[p + "attn.k.weight"] = w(kv_heads * head_dim, d)
        sd[p + "attn.v.weight"] = w(kv_heads * head_dim, d)
        sd[p + "attn.proj.weight"] = w(d, d)
        sd[p + "mlp.fc.weight"] = w(hidden, d)
        sd[p + "mlp.proj.weight"] = w(d, hidden)
        sd[p + "attn_norm.gain"] = np.ones(d, np.float32)
        sd[p + "mlp_norm.gain"] = np.ones(d, np.float32)
    return sd


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise ManifestError(f"checkpoint {path} not found; set params.checkpoint to a state dict file or 'synthetic'")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return {k: v.astype(np.float32) for k, v in load_file(str(path)).items()}
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k].astype(np.float32) for k in z.files}
    if path.suffix in (".pt", ".pth", ".bin"):
        from ..errors import require

        torch = require("torch", "hf", "loading a .pt checkpoint")
        sd = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in sd.items() if hasattr(v, "float")}
    raise ManifestError(f"checkpoint {path}: use .safetensors, .npz or .pt")


def quant_int8(w: np.ndarray):
    absmax = np.abs(w).max(axis=1, keepdims=True)
    scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float16).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale, None


def quant_int6_clip(w: np.ndarray, percentiles=PERCENTILES):
    """Per-row clip search; returns q, scales and the chosen percentile index per row."""
    a = np.abs(w)
    best_err = np.full(w.shape[0], np.inf)
    best_q = np.zeros(w.shape, np.int8)
    best_s = np.ones((w.shape[0], 1), np.float32)
    choice = np.zeros(w.shape[0], np.int64)
    for j, p in enumerate(percentiles):
        clip = np.quantile(a, p, axis=1, keepdims=True)
        scale = np.where(clip > 0, clip / 31.0, 1.0).astype(np.float16).astype(np.float32)
        q = np.clip(np.rint(w / scale), -31, 31)
        err = ((q * scale - w) ** 2).mean(axis=1)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_q[better] = q[better].astype(np.int8)
        best_s[better] = scale[better]
        choice[better] = j
    return best_q, best_s, choice


def serialize(tensors: dict) -> bytes:
    buf = io.BytesIO()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        buf.write(f"{name}|{arr.dtype.str}|{','.join(map(str, arr.shape))}\n".encode())
        buf.write(arr.tobytes())
    return buf.getvalue()


def export(sd: dict, method: str, percentiles=PERCENTILES):
    """(zlib bytes, raw bytes, relative round-trip error, choice histogram) for one method."""
    out, num, den = {}, 0.0, 0.0
    hist = np.zeros(len(percentiles), np.int64)
    for name, w in sd.items():
        if w.ndim != 2:
            out[name] = w.astype(np.float16)
            continue
        q, s, choice = quant_int8(w) if method == "int8" else quant_int6_clip(w, percentiles)
        if choice is not None:
            hist += np.bincount(choice, minlength=len(percentiles))
        out[name + ".q"] = q
        out[name + ".scale"] = s.astype(np.float16)
        rec = q.astype(np.float64) * s.astype(np.float64)
        num += float(((rec - w) ** 2).sum())
        den += float((w.astype(np.float64) ** 2).sum())
    raw = serialize(out)
    return len(zlib.compress(raw, 9)), len(raw), (num / den) ** 0.5, hist.tolist()


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    ckpt = params.get("checkpoint", "synthetic")
    pct = [float(p) for p in params.get("percentiles", PERCENTILES)]
    if ckpt == "synthetic":
        key = ("int6-synthetic", json.dumps(params, sort_keys=True))
        sd = ctx.cache.get(key)
        if sd is None:
            sd = synthetic_state_dict(int(params["layers"]), int(params["d_model"]), int(params["vocab"]),
                                      int(params.get("heads", 8)), int(params.get("kv_heads", 4)),
                                      float(params.get("mlp_mult", 2)), int(params.get("seed", 1337)))
            ctx.cache[key] = sd
            ctx.count("model_builds")
    else:
        sd = load_checkpoint(Path(ckpt))
    n_params = int(sum(v.size for v in sd.values()))
    res = RepResult()
    res.metrics["n_params"] = n_params
    for method in ("int8", "int6"):
        z, raw, err, hist = export(sd, method, pct)
        res.metrics[f"{method}.zlib_bytes"] = z
        res.metrics[f"{method}.raw_bytes"] = raw
        res.metrics[f"{method}.rel_rmse"] = err
        if method == "int6":
            res.info["int6_percentile_choices"] = dict(zip(map(str, pct), hist, strict=False))
    res.metrics["int6_over_int8"] = res.metrics["int6.zlib_bytes"] / res.metrics["int8.zlib_bytes"]
    res.not_applicable["val_bpb_delta"] = ("needs the PR's trained checkpoint and its validation data; "
                                           "this run measures bytes and round-trip error only")
    ctx.log(f"{n_params} params: int8 {res.metrics['int8.zlib_bytes']} B, int6 {res.metrics['int6.zlib_bytes']} B (zlib)")
    return res
