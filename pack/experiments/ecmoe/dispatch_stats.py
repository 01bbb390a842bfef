"""Distribution statistics of one MoE block's cached states (the journal's Task 1).

The journal reports, per layer, the standard deviation (0.16 at layer 0 rising to 1.21 at layer 47
on Qwen3-30B-A3B) and the kurtosis ("up to 81,340": heavy tails), and calls the distributions
heavy-tailed. It does not say which kurtosis; this is the excess (Fisher) kurtosis of all elements
of the layer, m4 / m2^2 - 3 (0 for a Gaussian; the two conventions differ by 3, nothing at 81,340).
Two statistics are the pack's own additions, stated as such in docs/ecmoe.md:

    outlier_frac   share of elements with |x - mean| > outlier_sigma * std (heavy tails in one number)
    eff_rank       exp(entropy of the normalised singular values) of the [tokens, hidden] matrix
                   (Roy & Vetterli 2007): how many directions carry the states, i.e. how far a
                   linear projection to hidden / r dimensions can go
"""

from __future__ import annotations

import math

STATS = ("mean", "std", "kurtosis", "absmax", "outlier_frac", "eff_rank")


def layer_stats(x, outlier_sigma: float = 6.0) -> dict:
    """x: [tokens, hidden] of any float dtype -> {stat: float}; the arithmetic runs in float64."""
    import torch

    xd = x.detach().to(torch.float64)
    mean = xd.mean()
    centred = xd - mean
    m2 = centred.pow(2).mean()
    m4 = centred.pow(4).mean()
    std = math.sqrt(float(m2))
    kurt = float(m4 / (m2 * m2)) - 3.0 if float(m2) > 0 else math.nan
    outliers = float((centred.abs() > outlier_sigma * std).double().mean()) if std > 0 else 0.0
    # Singular values from the hidden x hidden Gram matrix: cheap for 100k tokens, enough for an entropy.
    eig = torch.linalg.eigvalsh(xd.T @ xd).clamp_min(0.0)
    s = eig.sqrt()
    p = s / s.sum() if float(s.sum()) > 0 else s
    p = p[p > 0]
    eff_rank = math.exp(float(-(p * p.log()).sum())) if p.numel() else 0.0
    return {
        "mean": float(mean),
        "std": std,
        "kurtosis": kurt,
        "absmax": float(xd.abs().max()),
        "outlier_frac": outliers,
        "eff_rank": eff_rank,
    }


def summarize(per_layer: dict[int, dict]) -> dict:
    """The journal's sentence in numbers: std at the first and last layer, the largest kurtosis."""
    if not per_layer:
        return {}
    first, last = min(per_layer), max(per_layer)
    return {
        "std_first_layer": per_layer[first]["std"],
        "std_last_layer": per_layer[last]["std"],
        "kurtosis_max": max(v["kurtosis"] for v in per_layer.values()),
        "eff_rank_min": min(v["eff_rank"] for v in per_layer.values()),
    }
