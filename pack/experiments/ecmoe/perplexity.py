"""SFT-masked perplexity: exp(sum of NLL over response tokens / number of response tokens).

Sequences are right-padded per batch (padding is masked out of attention and labels), so with
causal attention a token's loss does not depend on the batch it sits in; the response-token count
is exact: every (position, next label) pair with a label != -100 counts once.
"""

from __future__ import annotations

import math

from .model_io import input_device


def batches(examples, batch_size: int, pad_id: int):
    """Yield (input_ids, attention_mask, labels) LongTensors of shape [batch, longest in batch]."""
    import torch

    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        width = max(len(e.input_ids) for e in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        for r, e in enumerate(chunk):
            n = len(e.input_ids)
            ids[r, :n] = torch.tensor(e.input_ids)
            mask[r, :n] = 1
            labels[r, :n] = torch.tensor(e.labels)
        yield ids, mask, labels


def evaluate(model, examples, *, batch_size: int, pad_id: int, watcher=None, deadline=None) -> dict:
    """{ppl, nll, nll_sum, n_response_tokens, n_sequences} over `examples`.

    watcher: a StateWatcher whose mask is set to each batch's response positions before the forward.
    deadline: a callable returning seconds left; the pass stops early (raising TimeoutError) below 0.
    """
    import torch
    import torch.nn.functional as F

    dev = input_device(model)
    nll_sum, count, seqs = 0.0, 0, 0
    with torch.inference_mode():
        for ids, mask, labels in batches(examples, batch_size, pad_id):
            if deadline is not None and deadline() < 0:
                raise TimeoutError("perplexity pass ran past the row's max runtime")
            ids, mask, labels = ids.to(dev), mask.to(dev), labels.to(dev)
            if watcher is not None:
                watcher.mask = labels != -100
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            shift_logits = logits[:, :-1].float()
            shift_labels = labels[:, 1:].to(shift_logits.device)
            nll_sum += float(
                F.cross_entropy(
                    shift_logits.reshape(-1, shift_logits.shape[-1]),
                    shift_labels.reshape(-1),
                    ignore_index=-100,
                    reduction="sum",
                ).double()
            )
            count += int((shift_labels != -100).sum())
            seqs += ids.shape[0]
    nll = nll_sum / count
    return {
        "ppl": math.exp(nll),
        "nll": nll,
        "nll_sum": nll_sum,
        "n_response_tokens": count,
        "n_sequences": seqs,
    }
