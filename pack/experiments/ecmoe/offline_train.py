"""Offline training of a CompressorBank on cached dispatch states (the journal's Tasks 3, 3b, 4a/4b).

Each block's codec is trained on its own cached states, in isolation, to minimise the journal's
reconstruction loss, MSE + (1 - cosine similarity) per token. Blocks train in layer order, so a
reference layer is finished before the layers that decode with its signal: in `stale: uncompressed`
the signal is the reference layer's cached raw state, in `stale: compressed` its (now frozen)
encoder's code of it. A shared codec (Task 3) trains on the states of every block pooled.

Adam, a fixed number of steps of `batch_tokens` random cached tokens each (a seeded generator on the
states' device); the journal gives no offline optimiser settings, so these are the pack's defaults
(docs/ecmoe.md says so).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_loss(x, y):
    """MSE + (1 - cosine): the journal's offline objective ("MSE + cosine"), both over tokens."""
    return F.mse_loss(y, x) + (1.0 - F.cosine_similarity(y, x, dim=-1, eps=1e-8)).mean()


def _fit(params, step_fn, steps: int, lr: float, deadline) -> list[float]:
    opt = torch.optim.Adam(params, lr=lr)
    curve = []
    for step in range(steps):
        if deadline is not None and step % 50 == 0 and deadline() < 0:
            raise TimeoutError("offline compressor training ran past the row's max runtime")
        loss = step_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(float(loss.detach()))
    return curve


def train(
    bank, states: dict, *, steps: int, lr: float, batch_tokens: int, seed: int = 0, deadline=None
) -> dict[str, list[float]]:
    """Train every codec of `bank` on `states` ({block: [tokens, hidden]}); {block or 'shared': curve}."""
    order = sorted(states)
    device = states[order[0]].device
    gen = torch.Generator(device=device).manual_seed(int(seed))
    n = min(states[i].shape[0] for i in order)
    curves: dict[str, list[float]] = {}
    bank.train()
    if bank.sharing == "shared":
        pooled = torch.cat([states[i][:n] for i in order])
        codec = bank.codec(0)

        def shared_step():
            x = pooled[
                torch.randint(0, pooled.shape[0], (batch_tokens,), generator=gen, device=device)
            ].float()
            return reconstruction_loss(x, codec.decode(codec.encode(x)))

        curves["shared"] = _fit(codec.parameters(), shared_step, steps, lr, deadline)
        bank.eval()
        return curves
    for i in order:
        codec = bank.codec(i)
        ref = None if bank.is_ref(i) else bank.ref_of(i)

        def step(_i=i, _codec=codec, _ref=ref):
            idx = torch.randint(0, n, (batch_tokens,), generator=gen, device=device)
            x = states[_i][idx].float()
            if _ref is None:
                return reconstruction_loss(x, _codec.decode(_codec.encode(x)))
            stale = states[_ref][idx].float()
            if bank.stale == "compressed":
                with torch.no_grad():
                    stale = bank.codec(_ref).encode(stale)
            return reconstruction_loss(x, _codec.decode(_codec.encode(x), stale))

        curves[str(i)] = _fit(codec.parameters(), step, steps, lr, deadline)
    bank.eval()
    return curves


def mean_curve(curves: dict[str, list[float]]) -> list[float]:
    """The per-step mean over blocks (what the report plots next to the per-block curves)."""
    rows = list(curves.values())
    return [sum(r[s] for r in rows) / len(rows) for s in range(min(len(r) for r in rows))] if rows else []
