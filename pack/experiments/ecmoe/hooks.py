"""Forward pre-hooks on every MoE block: compress -> decompress its input, or watch it.

Two router modes (the journal's 2026-02-21 simplification, implemented as on 2026-02-22):

    compressed     the block's pre-hook returns the reconstruction, so the router (gate) and the
                   experts both see it: a conservative lower bound on quality.
    uncompressed   the block's pre-hook stashes the original and returns the reconstruction; a
                   pre-hook on the router puts the original back, so routing is decided on the
                   source GPU's exact hidden state and only the experts see the reconstruction
                   (what expert-parallel dispatch with compression would really do).

`StateWatcher` leaves the forward untouched: it quantizes the response tokens' dispatch states of
an uncompressed pass with every (method, bits) and accumulates MSE / cosine / SNR per block, the
journal's "metrics on collected dispatch states" without storing the states (the journal cached
~35 GB of them; the sums are the same).
"""

from __future__ import annotations

from collections import Counter

from ...errors import ManifestError
from .quantize import ReconStats, quant_dequant

ROUTER_MODES = ("compressed", "uncompressed")
ROUTER_NAMES = ("gate", "router")


def find_moe_blocks(model, model_name: str = "the model") -> list[tuple[str, object]]:
    """[(qualified name, module)] of every MoE block: a module with `experts` and a `gate`/`router`.

    Raises ManifestError saying what the model's feed-forward modules are when there is none.
    """
    blocks = [
        (n, m)
        for n, m in model.named_modules()
        if hasattr(m, "experts") and any(hasattr(m, r) for r in ROUTER_NAMES)
    ]
    if blocks:
        return blocks
    ffn = Counter(type(m.mlp).__name__ for _, m in model.named_modules() if hasattr(m, "mlp"))
    found = ", ".join(f"{k} x{v}" for k, v in ffn.items()) or "no module with an 'mlp' or 'experts' attribute"
    raise ManifestError(
        f"{model_name} ({type(model).__name__}) has no MoE blocks: its feed-forward modules are "
        f"{found}; an ECMoE row needs a mixture-of-experts model such as Qwen3-MoE "
        "(set params.model to one, e.g. synthetic:tiny-qwen3-moe)"
    )


def router_of(block):
    for name in ROUTER_NAMES:
        sub = getattr(block, name, None)
        if sub is not None and hasattr(sub, "register_forward_pre_hook"):
            return sub
    return None


def first_input(args, kwargs):
    """The hidden states a block's forward pre-hook receives (positional, or `hidden_states=`)."""
    return args[0] if args else kwargs["hidden_states"]


_first_input = first_input


def _replace_input(args, kwargs, new):
    if args:
        return (new,) + tuple(args[1:]), kwargs
    return args, {**kwargs, "hidden_states": new}


class Hooks:
    """Registered hook handles; `remove()` (or leaving the `with` block) restores the model."""

    def __init__(self):
        self.handles: list = []

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def attach_compression(blocks, method: str, bits: int, router_mode: str, compute_device=None) -> Hooks:
    """Quantize -> dequantize the input of every block in `blocks` ([(name, module)])."""
    return attach_transform(
        blocks, lambda index, x: quant_dequant(x, method, bits, compute_device), router_mode
    )


def attach_transform(blocks, transform, router_mode: str) -> Hooks:
    """Replace the input x of block `index` with `transform(index, x)` (same shape), in a router mode.

    The one place both router modes are wired: quantization (attach_compression) and the learned
    compressors (compressor_hooks.py) hand their reconstruction in here. Blocks run in layer order
    within one forward, which is what a stale-conditioned transform relies on.
    """
    if router_mode not in ROUTER_MODES:
        raise ManifestError(
            f"params.router_modes: {router_mode!r} is not a router mode; use compressed or uncompressed"
        )
    hooks = Hooks()
    for index, (name, block) in enumerate(blocks):
        stash: dict = {}

        def block_hook(module, args, kwargs, _stash=stash, _i=index):
            x = _first_input(args, kwargs)
            if router_mode == "uncompressed":
                _stash["x"] = x
            return _replace_input(args, kwargs, transform(_i, x))

        hooks.handles.append(block.register_forward_pre_hook(block_hook, with_kwargs=True))
        if router_mode == "uncompressed":
            router = router_of(block)
            if router is None:
                hooks.remove()
                raise ManifestError(
                    f"MoE block {name} has no router submodule (looked for {', '.join(ROUTER_NAMES)}); "
                    "router_mode 'uncompressed' needs one to restore the original input for routing"
                )

            def router_hook(module, args, kwargs, _stash=stash):
                original = _stash.pop("x", None)
                if original is None:  # router called outside its block's forward: leave it alone
                    return None
                x = _first_input(args, kwargs)
                return _replace_input(args, kwargs, original.reshape(x.shape))

            hooks.handles.append(router.register_forward_pre_hook(router_hook, with_kwargs=True))
    return hooks


def attach_noop(blocks) -> Hooks:
    """A pre-hook that returns its input unchanged (the hook-overhead benchmark's control)."""
    hooks = Hooks()
    for _, block in blocks:

        def hook(module, args, kwargs):
            return _replace_input(args, kwargs, _first_input(args, kwargs))

        hooks.handles.append(block.register_forward_pre_hook(hook, with_kwargs=True))
    return hooks


class StateWatcher:
    """Accumulates reconstruction stats of every (method, bits) on the dispatch states it sees.

    Set `mask` ([batch, seq] bool, True = a response token) before each forward; each block keeps
    at most `max_tokens` tokens (the same tokens in every block, since all see the same batch).
    """

    def __init__(self, configs: list[tuple[str, int]], max_tokens: int):
        self.configs = list(configs)
        self.max_tokens = int(max_tokens)
        self.stats = {c: ReconStats() for c in self.configs}
        self.seen: dict[int, int] = {}
        self.mask = None

    def full(self) -> bool:
        return bool(self.seen) and min(self.seen.values()) >= self.max_tokens

    def attach(self, blocks) -> Hooks:
        hooks = Hooks()
        for index, (_, block) in enumerate(blocks):
            self.seen.setdefault(index, 0)

            def hook(module, args, kwargs, _i=index):
                self._observe(_i, _first_input(args, kwargs))
                return None

            hooks.handles.append(block.register_forward_pre_hook(hook, with_kwargs=True))
        return hooks

    def _observe(self, index: int, x) -> None:
        import torch

        room = self.max_tokens - self.seen[index]
        if room <= 0:
            return
        with torch.no_grad():
            flat = x.reshape(-1, x.shape[-1])
            if self.mask is not None:
                flat = flat[self.mask.reshape(-1).to(flat.device)]
            flat = flat[:room]
            if flat.shape[0] == 0:
                return
            original = flat.float()
            for method, bits in self.configs:
                # Quantize in the model's dtype, as the hook does: the metrics then include the
                # rounding of the reconstruction back to bf16 that the experts really see.
                recon = quant_dequant(flat, method, bits).float()
                self.stats[(method, bits)].add(index, original, recon)
        self.seen[index] += flat.shape[0]

    def summary(self) -> dict:
        """{(method, bits): {mse, cosine, snr_db}} and the tokens used per block."""
        return {c: s.summary() for c, s in self.stats.items()}
