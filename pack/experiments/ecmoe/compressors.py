"""Learned compressors of MoE dispatch states (the journal's Tasks 3, 3b, 4a/4b; trained in 5-7).

A codec maps a dispatch state x (hidden values) to a code z of hidden / r values (what would cross
the wire) and back:

    linear   z = W_c x + b_c,  x^ = W_d [z, stale] + b_d       (the journal's Compressor/Decompressor)
    mlp      Linear -> GELU -> Linear on each side (mlp_hidden wide; the pack's non-linear variant)

Sharing and stale conditioning (a `CompressorBank`, one codec per MoE block):

    per_layer              one codec per block (Task 3b); `shared`: one codec for all blocks (Task 3)
    stale: none            each block decodes from its own code only
    stale: uncompressed    blocks 0, s, 2s, ... (ref_stride s) are reference layers; the others decode
                           from [own code, the raw input of their reference layer] (Task 4b, 5b)
    stale: compressed      ... from [own code, the reference layer's code] (Task 4a)

The journal's parameter counts fix this shape: Task 6b at 2x has 386,023,424 parameters = 4 reference
layers x (2048x1024+1024 + 1024x2048+2048) + 44 layers x (2048x1024+1024 + 3072x2048+2048); a unit
test recomputes it from `CompressorBank.n_params` at the Qwen3-30B-A3B shape.

Linear codecs start near-identity (W_c = the first b rows of I, W_d = the matching columns, the stale
part 0: the journal's Task 5 init); MLP codecs start from torch's seeded default init. A codec runs
in float32 and hands back the input's dtype, as the quantizers do.

Wire accounting: a block sends b = hidden / r values per token; in `stale: uncompressed` a
reference layer also sends its raw state (hidden values). `wire_fraction` is what is sent over what
bf16 dispatch would send (1/r per layer; journal Task 8: 4x per-layer saves 75 %, stale 67 %).
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import ManifestError
from .quantize import ReconStats

ARCHITECTURES = ("linear", "mlp")
STALE_MODES = ("none", "compressed", "uncompressed")
SHARING = ("per_layer", "shared")


def bottleneck(hidden: int, ratio: int) -> int:
    if not isinstance(ratio, int) or ratio < 2 or hidden % ratio:
        raise ManifestError(
            f"params.ratios: {ratio!r} does not divide the model's hidden size {hidden}; use ratios "
            "that do (the journal uses 2, 4, 8, 16)"
        )
    return hidden // ratio


def _side(n_in: int, n_out: int, architecture: str, mlp_hidden: int) -> nn.Module:
    if architecture == "linear":
        return nn.Linear(n_in, n_out)
    return nn.Sequential(nn.Linear(n_in, mlp_hidden), nn.GELU(), nn.Linear(mlp_hidden, n_out))


class Codec(nn.Module):
    def __init__(
        self,
        hidden: int,
        code: int,
        stale_dim: int = 0,
        architecture: str = "linear",
        mlp_hidden: int | None = None,
    ):
        super().__init__()
        self.hidden, self.code, self.stale_dim, self.architecture = hidden, code, stale_dim, architecture
        width = mlp_hidden or hidden
        self.encoder = _side(hidden, code, architecture, width)
        self.decoder = _side(code + stale_dim, hidden, architecture, width)
        if architecture == "linear":
            self.near_identity_()

    @torch.no_grad()
    def near_identity_(self) -> None:
        eye = torch.eye(self.hidden)
        self.encoder.weight.copy_(eye[: self.code])
        self.encoder.bias.zero_()
        self.decoder.weight.zero_()
        self.decoder.weight[:, : self.code].copy_(eye[:, : self.code])
        self.decoder.bias.zero_()

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z, stale=None):
        return self.decoder(z if stale is None else torch.cat([z, stale.to(z.dtype)], dim=-1))


class CompressorBank(nn.Module):
    """One codec per MoE block (or one shared), with the stale wiring; see the module doc."""

    def __init__(
        self,
        n_blocks: int,
        hidden: int,
        ratio: int,
        *,
        architecture: str = "linear",
        stale: str = "none",
        ref_stride: int = 12,
        sharing: str = "per_layer",
        mlp_hidden: int | None = None,
    ):
        super().__init__()
        if architecture not in ARCHITECTURES or stale not in STALE_MODES or sharing not in SHARING:
            raise ManifestError(
                f"compressor: unknown architecture/stale/sharing {architecture}/{stale}/{sharing}"
            )
        if sharing == "shared" and stale != "none":
            raise ManifestError(
                "params.sharing: shared (one codec for every block, Task 3) has no reference layers; "
                "use stale: none with it, or sharing: per_layer"
            )
        self.n_blocks, self.hidden, self.ratio = n_blocks, hidden, ratio
        self.code = bottleneck(hidden, ratio)
        self.stale, self.ref_stride, self.sharing = stale, int(ref_stride), sharing
        stale_dim = {"none": 0, "compressed": self.code, "uncompressed": hidden}[stale]
        if sharing == "shared":
            one = Codec(hidden, self.code, 0, architecture, mlp_hidden)
            self.codecs = nn.ModuleList([one])
        else:
            self.codecs = nn.ModuleList(
                Codec(hidden, self.code, 0 if self.is_ref(i) else stale_dim, architecture, mlp_hidden)
                for i in range(n_blocks)
            )
        self.stale_cache: dict = {}

    def is_ref(self, i: int) -> bool:
        return self.stale == "none" or i % self.ref_stride == 0

    def ref_of(self, i: int) -> int:
        return i - i % self.ref_stride

    def codec(self, i: int) -> Codec:
        return self.codecs[0 if self.sharing == "shared" else i]

    def reconstruct(self, i: int, x):
        """Block i's reconstruction of x ([..., hidden], any dtype); reference layers refresh the stale
        signal their followers decode with, so call blocks in order within one forward."""
        codec = self.codec(i)
        xf = x.float()
        z = codec.encode(xf)
        if self.stale == "none":
            y = codec.decode(z)
        elif self.is_ref(i):
            self.stale_cache[i] = xf if self.stale == "uncompressed" else z
            y = codec.decode(z)
        else:
            ref = self.ref_of(i)
            if ref not in self.stale_cache:
                raise RuntimeError(f"block {i} needs reference layer {ref}'s signal, which has not run yet")
            y = codec.decode(z, self.stale_cache[ref])
        return y.to(x.dtype)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def wire_fraction(self) -> float:
        sent = self.n_blocks * self.code
        if self.stale == "uncompressed":
            sent += sum(1 for i in range(self.n_blocks) if self.is_ref(i)) * self.hidden
        return sent / (self.n_blocks * self.hidden)


def attach(blocks, bank: CompressorBank, router_mode: str):
    """Hooks that hand every block its bank reconstruction (router modes as in hooks.attach_transform)."""
    from .hooks import attach_transform

    return attach_transform(blocks, bank.reconstruct, router_mode)


@torch.no_grad()
def reconstruction_metrics(bank: CompressorBank, states: dict) -> dict:
    """{mse, cosine, snr_db} of the bank on cached states ({block: [tokens, hidden]}, aligned tokens),
    each block's reference signal taken from the same cached tokens (what offline training sees)."""
    stats = ReconStats()
    bank.stale_cache = {}
    for i in sorted(states):
        x = states[i].float()
        stats.add(i, x, bank.reconstruct(i, x).float())
    bank.stale_cache = {}
    return stats.summary()
