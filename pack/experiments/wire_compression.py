"""Seed 002, Ablation 4 — "honest wire compression": bytes on the wire for a text prompt versus the
same request sent as soft-token latents, with every byte of overhead counted.

Per sample the latent message is a real byte string that is decoded again:

    header   16 bytes   <IIBBHI: soft tokens, width, dtype code, bits, group size, groups
    scales   4 bytes per group of `group_size` values (float32 absmax / qmax); none for fp16
    payload  values at 16 bits (fp16) or bit-packed at 8/6/4 bits (two's-complement offset)
    anchor   the text "Answer: " (UTF-8), always sent as text

FP16 is a cast, not a quantization, so it carries no group scales (the seed lists "+ scales" for
it too; we count what an implementation must actually send). Reconstruction error comes from
decoding the bytes, not from a formula.

params (`Params`): n_samples, soft_tokens, d_model, group_size, anchor, formats [fp16, int8, int6, int4],
        prompts ("synthetic" or a GSM8K-style JSONL with a "question" field),
        latents ("synthetic" or a .npy / .safetensors file of shape [n, soft_tokens, d_model]), seed.

Ablation 2's compression ratios (150 -> 32 / 48 / 64 tokens, "~4.7x / ~3.1x / ~2.3x") are not
measured here: they are the plan's arithmetic on its own constants, and a check computed from the
same constants could never fail. The bytes below are measured from real encoded messages.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from pydantic import StrictInt, field_validator

from ..errors import ManifestError
from ..results import RepResult, RunContext
from ..strict import PositiveInt, Strict
from .params import parse

HEADER = struct.Struct("<IIBBHI")  # 16 bytes
DTYPE_CODES = {"fp16": 1, "int8": 2, "int6": 3, "int4": 4}
BITS = {"fp16": 16, "int8": 8, "int6": 6, "int4": 4}
assert HEADER.size == 16
GSM8K_HOWTO = (
    "make it with `python -c \"from datasets import load_dataset; load_dataset('openai/gsm8k', 'main', "
    "split='test').to_json('{path}')\"` (docs/latent-bridge.md), or set params.prompts: synthetic"
)
LATENTS_HOWTO = (
    "export the Ablation 1 checkpoint's soft tokens for the same questions as an array [n_samples, "
    "soft_tokens, d_model] (.npy or .safetensors; docs/latent-bridge.md), or set params.latents: synthetic"
)


class Params(Strict):
    """A wire-compression row's params (the one owner of them)."""

    n_samples: PositiveInt
    soft_tokens: PositiveInt = 64
    d_model: PositiveInt
    group_size: PositiveInt = 32
    anchor: str = "Answer: "
    formats: list[str] = ["fp16", "int8", "int6", "int4"]
    prompts: str = "synthetic"
    latents: str = "synthetic"
    seed: StrictInt = 1234

    @field_validator("formats")
    @classmethod
    def _formats(cls, v):
        bad = [f for f in v if f not in BITS]
        if bad:
            raise ValueError(f"unknown format {bad[0]!r}; use fp16, int8, int6 or int4")
        if not v:
            raise ValueError("list at least one of fp16, int8, int6, int4")
        return v


def pack_bits(u: np.ndarray, bits: int) -> bytes:
    """Pack unsigned integers < 2**bits, `bits` bits each, MSB first, into bytes."""
    as_bits = np.unpackbits(u.astype(np.uint8)[:, None], axis=1)[:, 8 - bits :]
    return np.packbits(as_bits.reshape(-1)).tobytes()


def unpack_bits(data: bytes, bits: int, n: int) -> np.ndarray:
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: n * bits].reshape(n, bits)
    padded = np.concatenate([np.zeros((n, 8 - bits), dtype=np.uint8), flat], axis=1)
    return np.packbits(padded, axis=1).reshape(n)


def encode(x: np.ndarray, fmt: str, group: int) -> bytes:
    """One sample's latents [tokens, width] -> header + scales + payload bytes."""
    tokens, width = x.shape
    flat = x.astype(np.float32).reshape(-1)
    if fmt == "fp16":
        return HEADER.pack(tokens, width, DTYPE_CODES[fmt], 16, 0, 0) + flat.astype("<f2").tobytes()
    bits = BITS[fmt]
    qmax = 2 ** (bits - 1) - 1
    pad = (-flat.size) % group
    groups = np.concatenate([flat, np.zeros(pad, np.float32)]).reshape(-1, group)
    absmax = np.abs(groups).max(axis=1)
    scale = np.where(absmax > 0, absmax / qmax, 1.0).astype(np.float32)
    q = np.clip(np.rint(groups / scale[:, None]), -qmax, qmax).astype(np.int16).reshape(-1)[: flat.size]
    payload = pack_bits((q + qmax).astype(np.uint8), bits)
    return (
        HEADER.pack(tokens, width, DTYPE_CODES[fmt], bits, group, len(scale))
        + scale.astype("<f4").tobytes()
        + payload
    )


def decode(msg: bytes) -> np.ndarray:
    tokens, width, code, bits, group, n_groups = HEADER.unpack_from(msg)
    body = msg[HEADER.size :]
    n = tokens * width
    if bits == 16:
        return np.frombuffer(body, dtype="<f2", count=n).astype(np.float32).reshape(tokens, width)
    qmax = 2 ** (bits - 1) - 1
    scale = np.frombuffer(body, dtype="<f4", count=n_groups)
    u = unpack_bits(body[4 * n_groups :], bits, n).astype(np.int16) - qmax
    per_value = np.repeat(scale, group)[:n]
    return (u.astype(np.float32) * per_value).reshape(tokens, width)


# A deterministic generator of GSM8K-like word problems (smoke prompts; no dataset download).
NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis", "Tina", "Marco"]
ITEMS = ["clips", "apples", "books", "pencils", "marbles", "cookies", "stickers", "tickets"]


def synthetic_prompts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        name, item = NAMES[rng.integers(len(NAMES))], ITEMS[rng.integers(len(ITEMS))]
        a, b, c, p = (int(v) for v in rng.integers(2, 90, size=4))
        out.append(
            f"Question: {name} sold {a} {item} to her friends in April, and then she sold {b} more {item} in "
            f"May than she did in April. In June she bought {c} new {item} at {p} cents each and gave half "
            f"of them to her brother. Each of the {item} she kept was later sold for twice what she paid. "
            f"How many {item} did {name} sell altogether in April and May, and how much money, in dollars, "
            f"did she make from the {item} she kept? Think step by step and give the final number.\n"
        )
    return out


def load_prompts(spec: str, n: int, seed: int) -> list[str]:
    if spec == "synthetic":
        return synthetic_prompts(n, seed)
    path = Path(spec)
    if not path.is_file():
        raise ManifestError(
            f"GSM8K prompts file {path} (params.prompts) not found; " + GSM8K_HOWTO.format(path=path)
        )
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                rec = json.loads(line)
                if "question" not in rec:
                    raise ManifestError(
                        f"{path}:{i}: record has no 'question' field (GSM8K format: question, answer)"
                    )
                rows.append(f"Question: {rec['question']}\n")
    if len(rows) < n:
        raise ManifestError(
            f"{path}: has {len(rows)} questions but n_samples is {n}; lower n_samples or add data"
        )
    return rows[:n]


def load_latents(spec: str, n: int, tokens: int, width: int, seed: int) -> np.ndarray:
    if spec == "synthetic":
        rng = np.random.default_rng(seed + 1)
        # Per-channel scales spanning ~2 decades mimic the outlier channels of real hidden states.
        channel = np.exp(rng.normal(0.0, 0.8, size=width)).astype(np.float32)
        return (rng.standard_normal((n, tokens, width)).astype(np.float32) * channel).astype(np.float32)
    path = Path(spec)
    if not path.is_file():
        raise ManifestError(f"latents file {path} (params.latents) not found; " + LATENTS_HOWTO)
    if path.suffix == ".npy":
        arr = np.load(path)
    elif path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        arr = next(iter(load_file(str(path)).values()))
    else:
        raise ManifestError(f"latents file {path}: use .npy or .safetensors")
    if arr.ndim != 3 or arr.shape[0] < n or arr.shape[1] != tokens or arr.shape[2] != width:
        raise ManifestError(
            f"latents file {path} has shape {arr.shape}; expected [>= {n}, {tokens}, {width}]"
        )
    return arr[:n].astype(np.float32)


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    p = parse(Params, params, "wire-compression")
    n, tokens, width, group, anchor, formats = (
        p.n_samples,
        p.soft_tokens,
        p.d_model,
        p.group_size,
        p.anchor,
        p.formats,
    )
    prompts = load_prompts(p.prompts, n, p.seed)
    latents = load_latents(p.latents, n, tokens, width, p.seed)
    anchor_bytes = len(anchor.encode("utf-8"))
    text_bytes = np.array([len(p.encode("utf-8")) for p in prompts], dtype=np.float64)
    res = RepResult()
    res.metrics["text_bytes"] = float(text_bytes.mean())
    table = []
    for fmt in formats:
        sizes, rel_err, cos = [], [], []
        for x in latents:
            msg = encode(x, fmt, group)
            y = decode(msg)
            sizes.append(len(msg) + anchor_bytes)
            # numpy's own pairwise sums, not BLAS dot: identical results whatever BLAS the machine has.
            x64, y64 = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
            nx, ny = np.sqrt((x64 * x64).sum()), np.sqrt((y64 * y64).sum())
            rel_err.append(np.sqrt(((x64 - y64) ** 2).sum()) / nx)
            cos.append(float((x64 * y64).sum() / (nx * ny)))
        mean_bytes = float(np.mean(sizes))
        res.metrics[f"{fmt}.bytes"] = mean_bytes
        res.metrics[f"{fmt}.ratio"] = float(text_bytes.mean() / mean_bytes)
        res.metrics[f"{fmt}.rel_error"] = float(np.mean(rel_err))
        res.metrics[f"{fmt}.cosine"] = float(np.mean(cos))
        table.append(
            {
                "format": fmt,
                "bytes": mean_bytes,
                "ratio": res.metrics[f"{fmt}.ratio"],
                "rel_error": res.metrics[f"{fmt}.rel_error"],
            }
        )
    res.info = {
        "header_bytes": HEADER.size,
        "anchor_bytes": anchor_bytes,
        "values_per_sample": tokens * width,
    }
    (ctx.rep_dir / "wire_table.json").write_text(json.dumps(table, indent=2))
    ctx.log(
        f"text {text_bytes.mean():.0f} B; " + "; ".join(f"{t['format']} {t['bytes']:.0f} B" for t in table)
    )
    return res
