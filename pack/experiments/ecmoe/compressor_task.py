"""ECMoE learned compressors (experiment `ecmoe_compressor`): the journal's Tasks 3, 3b, 4a/4b, 5, 6, 7.

One model load per process. The test split's uncompressed pass gives the baseline perplexity and
caches its dispatch states (the reconstruction metrics are taken on them); for offline training a
pass over the train split caches the training states (state_cache.py). Then per ratio r a
CompressorBank (compressors.py) is built, trained, and evaluated:

    training: offline          cached train states, MSE + (1 - cos)           Task 3 (shared), 3b, 4a, 4b
    training: e2e              frozen model, response-only SFT loss, near-identity init        Task 5a/5b
    training: e2e_pretrained   offline first, then e2e from those weights                      Task 6a/6b
    train_router_mode: uncompressed   e2e with the router seeing the original state            Task 7a/7b
    stale: none | uncompressed (4b, 5b, 6b, 7b) | compressed (4a)   ref_stride: 12
    architecture: linear | mlp     sharing: per_layer | shared (Task 3's one codec for all blocks)

params (besides model, dtype, device_map, seed, see model_io):
    sft_data, n_synthetic, split_seed, max_length, batch_size (eval)    as ecmoe_task2
    eval_samples (test split, 50000)  train_samples (10000)  val_samples (1000)
    train_tokens (cached states per block for offline training, 100000)  metric_tokens (100000)
    ratios: [2, 4, 8, 16] (or one int)   router_modes: [compressed, uncompressed] (evaluation)
    offline_steps 500  offline_lr 1e-3  offline_batch_tokens 1024
    e2e_steps 200  e2e_lr 1e-4  e2e_batch_size 4  grad_accum 2  weight_decay 0.01  warmup_frac 0.1
    grad_clip 1.0

metrics:
    baseline.{ppl, nll}  baseline.val_loss (e2e: Task 5c, no compression)  n_response_tokens
    n_sequences  n_moe_blocks  metric_tokens  train_tokens (offline)
    r<r>.{mse, cosine, snr_db}     on the test split's cached dispatch states
    r<r>.<router mode>.{ppl, ppl_delta}
    r<r>.{n_params, wire_fraction, train_s}   r<r>.peak_mem_mib (CUDA only)
    r<r>.offline.{loss_first, loss_last, loss_ratio}        mean over blocks, per step
    r<r>.e2e.{loss_first, loss_last, val_loss_init, val_loss, val_loss_ratio}

Artifacts: loss_curves.json / loss_curves.png (loss_curves.py), compressor.json (the table).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Literal

from pydantic import Field, StrictFloat, StrictInt, field_validator

from ...errors import ManifestError
from ...results import RepResult, RunContext
from ...strict import PositiveInt
from ..params import parse
from . import model_io

PositiveFloat = Annotated[StrictFloat | StrictInt, Field(gt=0)]
Mode = Literal["compressed", "uncompressed"]


class Params(model_io.ModelParams):
    """An ecmoe_compressor row's params (the one owner of them)."""

    sft_data: str = "synthetic"
    n_synthetic: PositiveInt = 200
    split_seed: StrictInt = 42
    max_length: PositiveInt = 2048
    batch_size: PositiveInt = 1
    eval_samples: PositiveInt = 50000
    train_samples: PositiveInt = 10000
    val_samples: PositiveInt = 1000
    train_tokens: PositiveInt = 100000
    metric_tokens: PositiveInt = 100000
    training: Literal["offline", "e2e", "e2e_pretrained"] = "offline"
    architecture: Literal["linear", "mlp"] = "linear"
    mlp_hidden: PositiveInt | None = None
    sharing: Literal["per_layer", "shared"] = "per_layer"
    stale: Literal["none", "compressed", "uncompressed"] = "none"
    ref_stride: PositiveInt = 12
    ratios: StrictInt | list[StrictInt] = [2, 4, 8, 16]
    router_modes: Mode | list[Mode] = ["compressed", "uncompressed"]
    train_router_mode: Mode = "compressed"
    offline_steps: PositiveInt = 500
    offline_lr: PositiveFloat = 1e-3
    offline_batch_tokens: PositiveInt = 1024
    e2e_steps: PositiveInt = 200
    e2e_lr: PositiveFloat = 1e-4
    e2e_batch_size: PositiveInt = 4
    grad_accum: PositiveInt = 2
    weight_decay: Annotated[StrictFloat | StrictInt, Field(ge=0)] = 0.01
    warmup_frac: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] = 0.1
    grad_clip: PositiveFloat = 1.0

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v):
        for r in v if isinstance(v, list) else [v]:
            if r < 2:
                raise ValueError(f"{r} is not a compression ratio; use 2 or more (the journal: 2, 4, 8, 16)")
        return v


def _as_list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _split(params: dict, p: Params, ctx: RunContext, tok, split: str, n: int):
    from .task2 import load_data

    return load_data({**params, "split": split, "max_samples": n}, ctx, tok)


def _cached_pass(key, ctx, model, tok, blocks, examples, batch_size, max_tokens):
    """(perplexity, {block: states}, 'computed' | 'reused') of one uncompressed pass with a StateCache."""
    from .perplexity import evaluate
    from .state_cache import StateCache

    if key in ctx.cache:
        return (*ctx.cache[key], "reused")
    cache = StateCache(max_tokens)
    with cache.attach(blocks):
        ppl = evaluate(
            model,
            examples,
            batch_size=batch_size,
            pad_id=tok.pad_token_id,
            watcher=cache,
            deadline=ctx.seconds_left,
        )
    ctx.cache[key] = (ppl, cache.states())
    return (*ctx.cache[key], "computed")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    import torch

    from . import compressors, e2e_train, loss_curves, offline_train
    from .hooks import find_moe_blocks
    from .perplexity import evaluate

    if "model" not in params:
        raise ManifestError("an ECMoE row needs params.model (e.g. synthetic:tiny-qwen3-moe)")
    p = parse(Params, params, "ecmoe_compressor")
    ratios, modes = _as_list(p.ratios), _as_list(p.router_modes)
    model, tok, _ = model_io.load_model(params, ctx)
    blocks = find_moe_blocks(model, p.model)
    hidden = int(model.config.hidden_size)
    for r in ratios:
        compressors.bottleneck(hidden, r)  # every ratio checked before any work starts
    device = str(model_io.input_device(model))
    pad = tok.pad_token_id
    mkey = model_io.model_key(params, ctx)

    test, test_facts = _split(params, p, ctx, tok, "test", p.eval_samples)
    ctx.provenance.setdefault("sft_data", {})[p.sft_data] = test_facts
    base, test_states, how = _cached_pass(
        ("ecmoe.compressor.test", mkey, tuple(sorted(test_facts.items())), p.batch_size, p.metric_tokens),
        ctx,
        model,
        tok,
        blocks,
        test,
        p.batch_size,
        p.metric_tokens,
    )
    res = RepResult(info={"baseline_pass": how, "data": {"test": test_facts}, "router_modes": modes})
    res.metrics.update(
        {
            "baseline.ppl": base["ppl"],
            "baseline.nll": base["nll"],
            "n_response_tokens": base["n_response_tokens"],
            "n_sequences": base["n_sequences"],
            "n_moe_blocks": len(blocks),
            "metric_tokens": min(x.shape[0] for x in test_states.values()),
        }
    )
    offline = p.training in ("offline", "e2e_pretrained")
    e2e = p.training in ("e2e", "e2e_pretrained")
    train_ex = None
    if offline or e2e:
        train_ex, train_facts = _split(params, p, ctx, tok, "train", p.train_samples)
        res.info["data"]["train"] = train_facts
    if offline:
        _, train_states, how = _cached_pass(
            (
                "ecmoe.compressor.train",
                mkey,
                tuple(sorted(train_facts.items())),
                p.batch_size,
                p.train_tokens,
            ),
            ctx,
            model,
            tok,
            blocks,
            train_ex,
            p.batch_size,
            p.train_tokens,
        )
        res.metrics["train_tokens"] = min(x.shape[0] for x in train_states.values())
        res.info["train_states_pass"] = how
    if e2e:
        val_ex, val_facts = _split(params, p, ctx, tok, "val", p.val_samples)
        res.info["data"]["val"] = val_facts
        res.metrics["baseline.val_loss"] = e2e_train.val_loss(
            model,
            None,
            blocks,
            val_ex,
            router_mode="compressed",
            batch_size=p.batch_size,
            pad_id=pad,
            deadline=ctx.seconds_left,
        )
    ctx.log(
        f"{len(blocks)} MoE blocks, hidden {hidden}; baseline ppl {base['ppl']:.4f}; "
        f"{p.training} {p.architecture} {p.sharing} stale={p.stale}, ratios {ratios}"
    )
    curves, table = {}, []
    for r in ratios:
        t = f"r{r}"
        torch.manual_seed(p.seed * 1009 + r)  # the MLP codecs' init
        bank = compressors.CompressorBank(
            len(blocks),
            hidden,
            r,
            architecture=p.architecture,
            stale=p.stale,
            ref_stride=p.ref_stride,
            sharing=p.sharing,
            mlp_hidden=p.mlp_hidden,
        ).to(device)
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        _sync(device)
        t0 = time.perf_counter()
        curves[t] = {}
        if offline:
            per_block = offline_train.train(
                bank,
                train_states,
                steps=p.offline_steps,
                lr=float(p.offline_lr),
                batch_tokens=p.offline_batch_tokens,
                seed=p.seed + r,
                deadline=ctx.seconds_left,
            )
            mean = offline_train.mean_curve(per_block)
            curves[t]["offline"] = mean
            curves[t]["offline_per_block"] = per_block
            res.metrics.update(
                {
                    f"{t}.offline.loss_first": mean[0],
                    f"{t}.offline.loss_last": mean[-1],
                    f"{t}.offline.loss_ratio": mean[-1] / mean[0],
                }
            )
        if e2e:
            out = e2e_train.train(
                model,
                bank,
                blocks,
                train_ex,
                val_ex,
                router_mode=p.train_router_mode,
                steps=p.e2e_steps,
                lr=float(p.e2e_lr),
                weight_decay=float(p.weight_decay),
                warmup_frac=float(p.warmup_frac),
                grad_clip=float(p.grad_clip),
                batch_size=p.e2e_batch_size,
                grad_accum=p.grad_accum,
                pad_id=pad,
                seed=p.seed + r,
                deadline=ctx.seconds_left,
            )
            curves[t].update({"e2e": out["loss"], "e2e_lr": out["lr"]})
            res.metrics.update(
                {
                    f"{t}.e2e.loss_first": out["loss"][0],
                    f"{t}.e2e.loss_last": out["loss"][-1],
                    f"{t}.e2e.val_loss_init": out["val_loss_init"],
                    f"{t}.e2e.val_loss": out["val_loss"],
                    f"{t}.e2e.val_loss_ratio": out["val_loss"] / out["val_loss_init"],
                }
            )
        _sync(device)
        res.metrics[f"{t}.train_s"] = time.perf_counter() - t0
        recon = compressors.reconstruction_metrics(bank, test_states)
        for name, value in recon.items():
            res.metrics[f"{t}.{name}"] = value
        res.metrics[f"{t}.n_params"] = bank.n_params()
        res.metrics[f"{t}.wire_fraction"] = bank.wire_fraction()
        row = {"ratio": r, "n_params": bank.n_params(), "wire_fraction": bank.wire_fraction(), **recon}
        for mode in modes:
            bank.stale_cache = {}
            with compressors.attach(blocks, bank, mode):
                ev = evaluate(model, test, batch_size=p.batch_size, pad_id=pad, deadline=ctx.seconds_left)
            bank.stale_cache = {}
            if ev["n_response_tokens"] != base["n_response_tokens"]:
                res.errors[f"{t}.{mode}"] = (
                    f"scored {ev['n_response_tokens']} response tokens, the baseline "
                    f"{base['n_response_tokens']}; the comparison is void"
                )
                continue
            res.metrics[f"{t}.{mode}.ppl"] = ev["ppl"]
            res.metrics[f"{t}.{mode}.ppl_delta"] = ev["ppl"] - base["ppl"]
            row[f"{mode}_ppl"] = ev["ppl"]
        if cuda:
            res.metrics[f"{t}.peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
        else:
            res.not_applicable[f"{t}.peak_mem_mib"] = (
                "a CPU run: peak memory is measured on CUDA devices only"
            )
        ctx.log(
            f"{t}: train {res.metrics[f'{t}.train_s']:.2f} s, mse {recon.get('mse', float('nan')):.4g}, "
            + ", ".join(f"{m} ppl {row.get(f'{m}_ppl', float('nan')):.4f}" for m in modes)
        )
        table.append(row)
        del bank
    res.info["loss_curves"] = loss_curves.write(ctx.rep_dir, curves)
    (ctx.rep_dir / "compressor.json").write_text(
        json.dumps({"params": p.model_dump(), "baseline": base, "rows": table}, indent=2, default=float)
    )
    return res
