"""Quantize -> dequantize of MoE dispatch states, and the reconstruction metrics (ECMoE Task 2).

A dispatch state is the input of an MoE block, x: [..., hidden] (one row per token). Both schemes
quantize each token's row on its own (one scale per token, as in the journal's Task 2), so a
b-bit code costs b bits per value plus one scale (and zero point) per token: ~16/b x smaller than
bf16 on the wire.

    absmax     q = clamp(round(x / s), -qmax, qmax),  s = max|x| / qmax,  qmax = 2**(b-1) - 1
    zeropoint  q = clamp(round(x / s) + z, 0, 2**b - 1),  s = (max - min) / (2**b - 1),  z = round(-min / s)

At 2 bits absmax has three levels {-s, 0, s}; most of a heavy-tailed row rounds to 0, which is
why the journal's INT2 perplexity explodes.

The arithmetic runs in float32 on `compute_device` (default: the input's device) and the result
is returned in the input's dtype and on the input's device: the journal's 2026-02-11 dtype bug
(float32 returned into a bf16 model) and 2026-02-17 device fix (`.to(x.device)`) in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...errors import ManifestError

BITS = (2, 4, 8)
METHODS = ("absmax", "zeropoint")


def check_bits(bits) -> int:
    """bits as an int in {2, 4, 8}, else a ManifestError naming params.bits."""
    ok = isinstance(bits, int) and not isinstance(bits, bool) and bits in BITS
    if not ok:
        raise ManifestError(
            f"params.bits = {bits!r} is not supported; ECMoE Task 2 quantizes at 2, 4 or 8 "
            "bits (set params.bits to one of 2, 4, 8)"
        )
    return bits


def check_method(method: str) -> str:
    if method not in METHODS:
        from ...strict import did_you_mean

        hint = did_you_mean(str(method), METHODS, n=1)
        raise ManifestError(f"params.method = {method!r} is not a quantization method; {hint}")
    return method


def quant_dequant(x, method: str, bits: int, compute_device=None):
    """x: [..., hidden] tensor of any float dtype -> tensor of x's shape, dtype and device."""
    import torch

    xf = x.to(device=compute_device or x.device, dtype=torch.float32)
    if method == "absmax":
        qmax = 2 ** (bits - 1) - 1
        scale = xf.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / qmax
        y = torch.clamp(torch.round(xf / scale), -qmax, qmax) * scale
    elif method == "zeropoint":
        levels = 2**bits - 1
        lo, hi = xf.amin(dim=-1, keepdim=True), xf.amax(dim=-1, keepdim=True)
        scale = (hi - lo).clamp_min(1e-12) / levels
        zero = torch.round(-lo / scale)
        y = (torch.clamp(torch.round(xf / scale) + zero, 0, levels) - zero) * scale
    else:
        raise ValueError(f"unknown method {method!r}")
    return y.to(device=x.device, dtype=x.dtype)


@dataclass
class ReconStats:
    """Running sums for one (method, bits) over the dispatch states of every MoE block.

    Per block: squared error, signal energy, element count, sum of per-token cosines, token count.
    Reported (see `summary`): each block's MSE, mean token cosine and SNR, averaged over blocks
    with equal weight, so a layer with many collected tokens does not dominate.
    """

    blocks: dict = field(default_factory=dict)  # block index -> [sq_err, signal, elems, cos_sum, tokens]

    def add(self, block: int, x, y) -> None:
        """x, y: [tokens, hidden] float32 (original, reconstruction)."""
        import torch

        err = (x - y).double()
        cos = torch.nn.functional.cosine_similarity(x, y, dim=-1, eps=1e-12).double()
        acc = self.blocks.setdefault(block, [0.0, 0.0, 0, 0.0, 0])
        acc[0] += float(err.pow(2).sum())
        acc[1] += float(x.double().pow(2).sum())
        acc[2] += x.numel()
        acc[3] += float(cos.sum())
        acc[4] += x.shape[0]

    def summary(self) -> dict:
        """{mse, cosine, snr_db} averaged over blocks; snr_db is +inf for a lossless block."""
        rows = [v for v in self.blocks.values() if v[4] > 0]
        if not rows:
            return {}
        mse = [r[0] / r[2] for r in rows]
        cos = [r[3] / r[4] for r in rows]
        snr = [10.0 * math.log10(r[1] / r[0]) if r[0] > 0 else math.inf for r in rows]
        n = len(rows)
        return {"mse": sum(mse) / n, "cosine": sum(cos) / n, "snr_db": sum(snr) / n}
