"""parameter-golf's model and validation metric, for judging a PR #682 checkpoint (seed 003).

Written from the architecture of parameter-golf's train_gpt.py (the baseline the PR patches) and
the PR's README for its two shape-neutral switches:

    x = rms_norm(tok_emb[ids]); x0 = x
    block i: x = mix0 * x + mix1 * x0
             x = x + attn_scale * attn(s_i * rms_norm(x))       s_i = 1/sqrt(i+1) with LN_SCALE=1, else 1
             x = x + mlp_scale * proj(relu(fc(s_i * rms_norm(x)))^2)
    attn:   q, k, v = c_q x, c_k x, c_v x (GQA); q, k = rms_norm per head; RoPE on the first
            rope_dims dims of each head (all with ROPE_DIMS=0), the rest passed through; q *= q_gain;
            causal softmax attention; proj
    U-net:  the first L//2 blocks push their outputs, the rest add skip_weights[j] * pop() first
    logits = 30 tanh((rms_norm(x) @ tok_emb.T) / 30)            (tied embeddings, logit soft-cap)

val_bpb is the challenge's tokenizer-agnostic metric: mean cross-entropy in bits per token times
tokens per byte, the bytes of each target token counted from the SentencePiece vocabulary (its
piece's UTF-8 bytes, +1 for a leading "▁" unless the previous token is a boundary/control token).
Validation tokens are the challenge's shards (256 int32 header words, magic 20240520, version 1,
count; then uint16 tokens), cut to whole sequences of `seq_len`, at most `max_val_seqs` of them
(the PR's MAX_VAL_SEQS patch).

torch and sentencepiece are imported inside the functions (the CLI never loads them).
"""

from __future__ import annotations

import glob
import math
from pathlib import Path

import numpy as np

from ..errors import ManifestError, require

SHARD_MAGIC, SHARD_VERSION, HEADER_WORDS = 20240520, 1, 256


def load_tokens(pattern: str, seq_len: int, max_seqs: int | None) -> np.ndarray:
    """The validation stream (uint16 -> int64), cut to whole sequences plus the one target after them."""
    files = sorted(glob.glob(pattern))
    if not files:
        raise ManifestError(
            f"no validation shard matches {pattern} (params.val_tokens); the PR reads "
            "data/datasets/fineweb10B_sp1024/fineweb_val_*.bin (parameter-golf's "
            "data/cached_challenge_fineweb.py)"
        )
    parts = []
    for f in files:
        header = np.fromfile(f, dtype="<i4", count=HEADER_WORDS)
        if header.size != HEADER_WORDS or header[0] != SHARD_MAGIC or header[1] != SHARD_VERSION:
            raise ManifestError(
                f"{f}: not a parameter-golf token shard (header magic {SHARD_MAGIC}, version 1)"
            )
        n = int(header[2])
        if Path(f).stat().st_size != 4 * HEADER_WORDS + 2 * n:
            raise ManifestError(
                f"{f}: its header says {n} tokens but the file size does not match; re-download it"
            )
        parts.append(np.fromfile(f, dtype="<u2", count=n, offset=4 * HEADER_WORDS))
    tokens = np.concatenate(parts).astype(np.int64)
    seqs = (tokens.size - 1) // seq_len
    if max_seqs:
        seqs = min(seqs, max_seqs)
    if seqs < 1:
        raise ManifestError(
            f"{pattern}: {tokens.size} tokens is less than one sequence of {seq_len} (params.seq_len)"
        )
    return tokens[: seqs * seq_len + 1]


def byte_luts(tokenizer_path: str, vocab: int):
    """(bytes per piece, has a leading '▁', is a boundary token) for every token id < vocab."""
    spm = require("sentencepiece", "hf", "bits per byte from the PR's SentencePiece tokenizer")
    if not Path(tokenizer_path).is_file():
        raise ManifestError(
            f"tokenizer {tokenizer_path} (params.tokenizer) not found; the PR uses "
            "data/tokenizers/fineweb_1024_bpe.model from parameter-golf's data download"
        )
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    size = max(int(sp.vocab_size()), vocab)
    base = np.zeros(size, np.int64)
    space = np.zeros(size, bool)
    boundary = np.ones(size, bool)
    for t in range(int(sp.vocab_size())):
        if sp.is_control(t) or sp.is_unknown(t) or sp.is_unused(t):
            continue
        boundary[t] = False
        if sp.is_byte(t):
            base[t] = 1
            continue
        piece = sp.id_to_piece(t)
        if piece.startswith("\u2581"):
            space[t] = True
            piece = piece[1:]
        base[t] = len(piece.encode("utf-8"))
    return base, space, boundary


def target_bytes(tokens: np.ndarray, luts) -> int:
    base, space, boundary = luts
    prev, tgt = tokens[:-1], tokens[1:]
    return int((base[tgt] + (space[tgt] & ~boundary[prev])).sum())


def _rope(torch, x, dims: int, base: float):
    """Rotate the first `dims` of the head dimension (half-split pairs), pass the rest through."""
    if dims == 0:
        return x
    seq = x.shape[-2]
    inv = 1.0 / (base ** (torch.arange(0, dims, 2, dtype=torch.float32, device=x.device) / dims))
    ang = torch.outer(torch.arange(seq, dtype=torch.float32, device=x.device), inv)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    rot, rest = x[..., :dims], x[..., dims:]
    a, b = rot[..., : dims // 2], rot[..., dims // 2 :]
    return torch.cat((a * cos + b * sin, -a * sin + b * cos, rest), dim=-1)


def mean_nll(
    sd: dict,
    tokens: np.ndarray,
    *,
    seq_len: int,
    heads: int,
    kv_heads: int,
    rope_dims: int,
    ln_scale: bool,
    rope_base: float = 10000.0,
    softcap: float = 30.0,
    batch: int = 8,
    device: str = "cpu",
) -> float:
    """Mean cross-entropy (nats per token) of the model in state dict `sd` over `tokens`."""
    torch = require("torch", "hf", "evaluating a parameter-golf checkpoint")
    F = torch.nn.functional
    w = {k: torch.as_tensor(np.asarray(v, dtype=np.float32), device=device) for k, v in sd.items()}
    emb = w["tok_emb.weight"]
    dim = emb.shape[1]
    hd = dim // heads
    rope = rope_dims or hd
    n_layers = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("blocks."))
    n_enc = n_layers // 2

    def rms(x):
        return F.rms_norm(x, (x.shape[-1],))

    def block(i, x, x0):
        p = f"blocks.{i}."
        s = 1.0 / math.sqrt(i + 1) if ln_scale else 1.0
        mix = w[p + "resid_mix"]
        x = mix[0] * x + mix[1] * x0
        h = rms(x) * s
        bsz, t, _ = h.shape
        q = (h @ w[p + "attn.c_q.weight"].T).view(bsz, t, heads, hd).transpose(1, 2)
        k = (h @ w[p + "attn.c_k.weight"].T).view(bsz, t, kv_heads, hd).transpose(1, 2)
        v = (h @ w[p + "attn.c_v.weight"].T).view(bsz, t, kv_heads, hd).transpose(1, 2)
        q, k = _rope(torch, rms(q), rope, rope_base), _rope(torch, rms(k), rope, rope_base)
        q = q * w[p + "attn.q_gain"][None, :, None, None]
        rep = heads // kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(bsz, t, dim)
        x = x + w[p + "attn_scale"] * (y @ w[p + "attn.proj.weight"].T)
        h = rms(x) * s
        m = torch.relu(h @ w[p + "mlp.fc.weight"].T).square() @ w[p + "mlp.proj.weight"].T
        return x + w[p + "mlp_scale"] * m

    seqs = (tokens.size - 1) // seq_len
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, seqs, batch):
            stop = min(start + batch, seqs)
            chunk = torch.as_tensor(tokens[start * seq_len : stop * seq_len + 1], device=device)
            x_ids, y_ids = chunk[:-1].view(-1, seq_len), chunk[1:].view(-1, seq_len)
            x = rms(emb[x_ids])
            x0, skips = x, []
            for i in range(n_enc):
                x = block(i, x, x0)
                skips.append(x)
            for j in range(n_layers - n_enc):
                if skips:
                    x = x + w["skip_weights"][j] * skips.pop()
                x = block(n_enc + j, x, x0)
            logits = softcap * torch.tanh((rms(x) @ emb.T) / softcap)
            nll = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).double(), y_ids.reshape(-1), reduction="sum"
            )
            total += float(nll)
            count += y_ids.numel()
    return total / count


def val_bpb(sd: dict, tokens: np.ndarray, luts, **model) -> float:
    """Bits per byte: nats/token / ln 2 x tokens / bytes (the challenge's definition)."""
    nll = mean_nll(sd, tokens, **model)
    return nll / math.log(2.0) * (tokens.size - 1) / target_bytes(tokens, luts)
