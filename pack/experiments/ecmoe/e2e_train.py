"""End-to-end training of a CompressorBank through the frozen model (the journal's Tasks 5, 6, 7).

Every block's codec sits in a forward pre-hook (compressors.attach); the model's weights are frozen
and only the codecs learn, all at once, from the response-only SFT loss (cross-entropy on assistant
tokens, the labels sft.py builds), so a codec at block 0 learns from how its errors play out in
every later block. As in the journal (2026-02-11 Task 5 entry): AdamW (weight decay 0.01), cosine
schedule after a 10 % linear warm-up, gradient clipping at 1.0, and the stale signal is NOT
detached (reference codecs also learn to serve their followers). Task 6 is the same from offline-
trained weights; Task 7 (split mode) trains with router_mode 'uncompressed', so the router sees the
original state during training too.

The validation loss is perplexity.evaluate's mean NLL over the response tokens of the val split
(with the hooks attached): before training, after it, and without any compressor (Task 5c's
no-compression reference).
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from . import compressors
from .model_io import input_device
from .perplexity import batches, evaluate


def sft_loss(model, ids, mask, labels):
    """Mean cross-entropy over response tokens (labels != -100), next-token shifted."""
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
    )


def lr_factor(step: int, total: int, warmup_frac: float) -> float:
    """Linear warm-up over the first warmup_frac of the steps, then cosine decay to 0."""
    warm = max(1, int(round(total * warmup_frac)))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


class Frozen:
    """Freeze the model's parameters for the `with` block and put their flags back afterwards."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in self.flags:
            p.requires_grad_(False)
        return self

    def __exit__(self, *exc):
        for p, flag in self.flags:
            p.requires_grad_(flag)


def val_loss(model, bank, blocks, examples, *, router_mode, batch_size, pad_id, deadline=None) -> float:
    """Mean response-token NLL of the val split, through the bank (None: no compression)."""
    if bank is None:
        return evaluate(model, examples, batch_size=batch_size, pad_id=pad_id, deadline=deadline)["nll"]
    bank.eval()
    with compressors.attach(blocks, bank, router_mode):
        return evaluate(model, examples, batch_size=batch_size, pad_id=pad_id, deadline=deadline)["nll"]


def train(
    model,
    bank,
    blocks,
    train_examples,
    val_examples,
    *,
    router_mode: str,
    steps: int,
    lr: float,
    weight_decay: float,
    warmup_frac: float,
    grad_clip: float,
    batch_size: int,
    grad_accum: int,
    pad_id: int,
    seed: int = 0,
    deadline=None,
) -> dict:
    """{loss: [per optimizer step], lr: [...], val_loss_init, val_loss} after `steps` optimizer steps."""
    dev = input_device(model)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(bank.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup_frac))
    kw = dict(router_mode=router_mode, batch_size=batch_size, pad_id=pad_id, deadline=deadline)
    out = {"val_loss_init": val_loss(model, bank, blocks, val_examples, **kw), "loss": [], "lr": []}

    def micro_batches():
        while True:  # epochs over a reshuffled train split, as long as the steps need
            order = list(train_examples)
            rng.shuffle(order)
            yield from batches(order, batch_size, pad_id)

    feed = micro_batches()
    with Frozen(model), compressors.attach(blocks, bank, router_mode):
        bank.train()
        for _step in range(steps):
            if deadline is not None and deadline() < 0:
                raise TimeoutError("end-to-end compressor training ran past the row's max runtime")
            total = 0.0
            for _ in range(grad_accum):
                ids, mask, labels = (t.to(dev) for t in next(feed))
                loss = sft_loss(model, ids, mask, labels) / grad_accum
                loss.backward()
                total += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(bank.parameters(), grad_clip)
            out["lr"].append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            out["loss"].append(total)
    bank.eval()
    bank.stale_cache = {}
    out["val_loss"] = val_loss(model, bank, blocks, val_examples, **kw)
    return out
