"""Cache the dispatch states (MoE block inputs) and optionally the gathered outputs, response tokens only.

The journal's Task 1 collection (2026-02-11, response-only since 2026-02-17): run the model over SFT
sequences and keep, per MoE block, the hidden states of the assistant tokens, up to `max_tokens`
per block. Every block sees the same batches with the same mask, so row j of block i and row j of
block k are the same token: what the stale-conditioned compressors rely on (a reference layer's
state for the token a later layer compresses).

It plugs into `perplexity.evaluate(..., watcher=cache)`: evaluate sets `cache.mask` to each batch's
response positions before the forward, so one pass gives the perplexity and the cache.
"""

from __future__ import annotations

from .hooks import Hooks, first_input


class StateCache:
    """Per block: a list of [tokens, hidden] chunks (detached, in the model's dtype, on its device)."""

    def __init__(self, max_tokens: int, gather: bool = False):
        self.max_tokens = int(max_tokens)
        self.gather = gather
        self.dispatch: dict[int, list] = {}
        self.gathered: dict[int, list] = {}
        self.mask = None

    def _room(self, store: dict, index: int) -> int:
        return self.max_tokens - sum(c.shape[0] for c in store.get(index, []))

    def _keep(self, store: dict, index: int, x) -> None:
        room = self._room(store, index)
        if room <= 0:
            return
        flat = x.detach().reshape(-1, x.shape[-1])
        if self.mask is not None:
            flat = flat[self.mask.reshape(-1).to(flat.device)]
        flat = flat[:room]
        if flat.shape[0]:
            store.setdefault(index, []).append(flat.clone())

    def attach(self, blocks) -> Hooks:
        hooks = Hooks()
        for index, (_, block) in enumerate(blocks):
            self.dispatch.setdefault(index, [])

            def pre(module, args, kwargs, _i=index):
                self._keep(self.dispatch, _i, first_input(args, kwargs))

            hooks.handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
            if self.gather:

                def post(module, args, output, _i=index):
                    out = output[0] if isinstance(output, tuple) else output
                    self._keep(self.gathered, _i, out)

                hooks.handles.append(block.register_forward_hook(post))
        return hooks

    @staticmethod
    def _stack(store: dict) -> dict:
        import torch

        return {i: torch.cat(chunks) for i, chunks in sorted(store.items()) if chunks}

    def states(self) -> dict:
        """{block index: [tokens, hidden] tensor} of the dispatch states."""
        return self._stack(self.dispatch)

    def gathered_states(self) -> dict:
        return self._stack(self.gathered)

    def tokens(self) -> int:
        """Tokens per block (the same in every block)."""
        counts = [sum(c.shape[0] for c in v) for v in self.dispatch.values()]
        return min(counts) if counts else 0
