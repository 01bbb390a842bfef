"""The learned compressors (pack/experiments/ecmoe/compressors.py, offline_train.py, dispatch_stats.py):
shapes and ratios, the journal's parameter counts and wire savings, that training lowers the loss,
that stale conditioning really decodes with the reference layer's signal, and what the router sees
in split mode. Each assertion fails if the code it names is wrong."""

import math

import pytest
import torch

from pack.errors import ManifestError
from pack.experiments.ecmoe import compressors, dispatch_stats, offline_train
from pack.experiments.ecmoe.compressors import Codec, CompressorBank

pytestmark = pytest.mark.ecmoe


def _low_rank(n=2048, hidden=64, rank=8, seed=0, noise=0.01):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(rank, hidden, generator=g)
    return torch.randn(n, rank, generator=g) @ basis + noise * torch.randn(n, hidden, generator=g)


def test_shapes_ratio_and_dtype():
    bank = CompressorBank(3, 64, 4)
    assert bank.code == 16 and bank.codec(0).encode(torch.zeros(5, 64)).shape == (5, 16)
    x = torch.randn(2, 7, 64, dtype=torch.bfloat16)
    y = bank.reconstruct(1, x)
    assert y.shape == x.shape and y.dtype == torch.bfloat16
    with pytest.raises(ManifestError, match="params.ratios"):
        CompressorBank(3, 64, 3)  # 3 does not divide 64


def test_near_identity_init_keeps_the_first_b_dimensions():
    x = torch.randn(10, 64)
    y = Codec(64, 16).decode(Codec(64, 16).encode(x))
    assert torch.equal(y[:, :16], x[:, :16]) and torch.count_nonzero(y[:, 16:]) == 0


def test_parameter_counts_and_wire_savings_match_the_journal():
    # Qwen3-30B-A3B: 48 MoE blocks, hidden 2048, reference layers every 12 (journal 2026-02-20, 2026-02-24).
    with torch.device("meta"):
        per_layer = {r: CompressorBank(48, 2048, r) for r in (2, 16)}
        stale = {r: CompressorBank(48, 2048, r, stale="uncompressed", ref_stride=12) for r in (2, 4, 16)}
    assert per_layer[2].n_params() == 201_474_048 and per_layer[16].n_params() == 25_270_272
    assert stale[2].n_params() == 386_023_424 and stale[16].n_params() == 209_819_648
    assert per_layer[2].wire_fraction() == 0.5
    assert round(1 - stale[4].wire_fraction(), 4) == 0.6667  # Task 8: stale 4x saves 67 %
    with torch.device("meta"):
        assert CompressorBank(48, 2048, 4).wire_fraction() == 0.25  # per-layer 4x saves 75 %


def test_offline_training_lowers_the_loss_and_more_compression_costs_more():
    x = _low_rank(rank=24)
    states = {0: x, 1: x.flip(-1)}
    mse = {}
    for r in (2, 16):
        bank = CompressorBank(2, 64, r)
        before = compressors.reconstruction_metrics(bank, states)["mse"]
        curves = offline_train.train(bank, states, steps=150, lr=1e-2, batch_tokens=256)
        mse[r] = compressors.reconstruction_metrics(bank, states)["mse"]
        assert mse[r] < (0.5 if r == 2 else 0.95) * before
        assert curves["0"][-1] < 0.8 * curves["0"][0] and set(curves) == {"0", "1"}
    assert mse[2] < mse[16]  # 32 code dims hold a rank-24 signal, 4 do not


def test_stale_conditioning_decodes_with_the_reference_layers_signal():
    bank = CompressorBank(6, 64, 16, stale="uncompressed", ref_stride=4)
    assert [bank.is_ref(i) for i in range(6)] == [True, False, False, False, True, False]
    assert bank.ref_of(5) == 4 and bank.codec(5).stale_dim == 64 and bank.codec(4).stale_dim == 0
    with torch.no_grad():
        bank.codec(5).decoder.weight[:, 4:].copy_(torch.eye(64))  # decode = own code + the stale state
    x4, x5 = torch.randn(3, 64), torch.randn(3, 64)
    bank.reconstruct(4, x4)
    assert torch.equal(bank.stale_cache[4], x4)
    y = bank.reconstruct(5, x5)
    bank.reconstruct(4, 2 * x4)  # a new reference signal changes block 5's output, its own input unchanged
    y2 = bank.reconstruct(5, x5)
    assert torch.allclose(y2 - y, x4, atol=1e-6)
    comp = CompressorBank(6, 64, 16, stale="compressed", ref_stride=4)
    comp.reconstruct(0, x4)
    assert comp.codec(1).stale_dim == 4 and torch.equal(comp.stale_cache[0], comp.codec(0).encode(x4))
    with pytest.raises(RuntimeError, match="reference layer 4"):
        CompressorBank(6, 64, 16, stale="uncompressed", ref_stride=4).reconstruct(5, x5)


def test_offline_stale_signal_helps_when_layers_are_correlated():
    x0 = _low_rank(rank=32, seed=1)
    x1 = x0 + 0.05 * torch.randn_like(x0)  # the next layer's state is close to its reference's
    states = {0: x0, 1: x1}
    got = {}
    for stale in ("none", "uncompressed"):
        bank = CompressorBank(2, 64, 16, stale=stale, ref_stride=2)
        offline_train.train(bank, states, steps=200, lr=1e-2, batch_tokens=256)
        bank.stale_cache = {}
        with torch.no_grad():
            bank.reconstruct(0, x0)
            got[stale] = float((bank.reconstruct(1, x1) - x1).pow(2).mean())
    assert got["uncompressed"] < 0.2 * got["none"]


def test_shared_codec_is_one_module_for_every_block():
    bank = CompressorBank(4, 64, 4, sharing="shared")
    assert bank.codec(0) is bank.codec(3) and len(bank.codecs) == 1
    curves = offline_train.train(
        bank, {i: _low_rank(seed=i) for i in range(4)}, steps=20, lr=1e-2, batch_tokens=64
    )
    assert list(curves) == ["shared"]
    with pytest.raises(ManifestError, match="sharing"):
        CompressorBank(4, 64, 4, sharing="shared", stale="uncompressed")


def _block():
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    from pack.models.synthetic import make_config

    torch.manual_seed(0)
    block = Qwen3MoeSparseMoeBlock(make_config("tiny-qwen3-moe"))
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return block.eval()


def test_split_mode_router_sees_the_original_and_experts_the_reconstruction():
    block = _block()
    bank = CompressorBank(1, 64, 8)
    x = torch.randn(2, 5, 64)
    with torch.no_grad():
        recon = bank.reconstruct(0, x).reshape(-1, 64)
    for mode, router_sees in (("uncompressed", x.reshape(-1, 64)), ("compressed", recon)):
        got = {}
        with compressors.attach([("mlp", block)], bank, mode), torch.no_grad():
            # registered after the bank's hooks, so they see what the router and experts really get
            h1 = block.gate.register_forward_pre_hook(
                lambda m, a, _g=got: _g.__setitem__("gate", a[0].clone())
            )
            h2 = block.experts.register_forward_pre_hook(
                lambda m, a, _g=got: _g.__setitem__("experts", a[0].clone())
            )
            block(x)
            h1.remove()
            h2.remove()
        assert torch.equal(got["gate"], router_sees), mode
        assert torch.equal(got["experts"], recon), mode


def test_dispatch_stats_on_known_distributions():
    g = torch.Generator().manual_seed(0)
    gauss = 2.0 * torch.randn(20000, 32, generator=g)
    s = dispatch_stats.layer_stats(gauss)
    assert abs(s["std"] - 2.0) < 0.02 and abs(s["kurtosis"]) < 0.05 and s["outlier_frac"] < 1e-4
    laplace = torch.distributions.Laplace(0.0, 1.0).sample((20000, 32))
    assert abs(dispatch_stats.layer_stats(laplace)["kurtosis"] - 3.0) < 0.3  # excess kurtosis of Laplace
    planted = gauss.clone()
    planted[:10, 0] = 1000.0
    assert dispatch_stats.layer_stats(planted)["outlier_frac"] == pytest.approx(10 / planted.numel(), rel=0.2)
    low = _low_rank(n=4000, hidden=32, rank=3, noise=0.0)
    assert dispatch_stats.layer_stats(low)["eff_rank"] < 3.01 < dispatch_stats.layer_stats(gauss)["eff_rank"]
    summary = dispatch_stats.summarize({0: {**s, "std": 0.16}, 5: {**s, "std": 1.21, "kurtosis": 9.0}})
    assert summary["std_first_layer"] == 0.16 and summary["std_last_layer"] == 1.21
    assert summary["kurtosis_max"] == 9.0 and math.isfinite(summary["eff_rank_min"])


def test_stale_gradient_reaches_the_reference_codec():
    # End-to-end training does not detach the stale signal (journal, Task 5b): block 1's loss must
    # reach block 0's encoder through the compressed stale code.
    bank = CompressorBank(2, 64, 8, stale="compressed", ref_stride=2)
    with torch.no_grad():
        bank.codec(1).decoder.weight[:, 8:].normal_()  # near-identity starts the stale part at 0
    bank.reconstruct(0, torch.randn(4, 64))
    bank.reconstruct(1, torch.randn(4, 64)).pow(2).sum().backward()
    assert float(bank.codec(0).encoder.weight.grad.abs().sum()) > 0


def test_lr_schedule_warms_up_then_decays_to_zero():
    from pack.experiments.ecmoe.e2e_train import lr_factor

    f = [lr_factor(s, 20, 0.1) for s in range(20)]
    assert f[0] == 0.5 and f[1] == 1.0 and f[2] == 1.0
    assert all(a >= b for a, b in zip(f[2:], f[3:], strict=False)) and f[-1] < 0.01


def test_bad_params_are_one_sentence_errors():
    from pack.experiments.ecmoe.compressor_task import Params
    from pack.experiments.params import parse

    with pytest.raises(ManifestError, match="ratios"):
        parse(Params, {"model": "synthetic:tiny-qwen3-moe", "ratios": [1]}, "ecmoe_compressor")
    with pytest.raises(ManifestError, match="training"):
        parse(Params, {"model": "synthetic:tiny-qwen3-moe", "training": "online"}, "ecmoe_compressor")


def test_e2e_training_lowers_val_loss_and_leaves_the_model_as_it_was():
    from pack.experiments.ecmoe import e2e_train, sft
    from pack.experiments.ecmoe.hooks import find_moe_blocks
    from pack.models import synthetic

    model = synthetic.build_model("tiny-qwen3-moe", num_hidden_layers=2)
    model.set_experts_implementation("eager")
    tok = synthetic.build_tokenizer()
    examples = [e for r in sft.synthetic_records(12) if (e := sft.tokenize(tok, r["messages"], 128))][:6]
    assert len(examples) == 6
    before = {k: v.clone() for k, v in model.state_dict().items()}
    blocks = find_moe_blocks(model)
    bank = CompressorBank(len(blocks), 64, 4)
    out = e2e_train.train(
        model,
        bank,
        blocks,
        examples[:4],
        examples[4:],
        router_mode="uncompressed",
        steps=4,
        lr=3e-2,
        weight_decay=0.0,
        warmup_frac=0.25,
        grad_clip=1.0,
        batch_size=2,
        grad_accum=1,
        pad_id=tok.pad_token_id,
    )
    assert len(out["loss"]) == 4 and out["lr"][0] == pytest.approx(3e-2)
    assert out["val_loss"] < out["val_loss_init"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # only the codecs learned
    assert all(p.requires_grad for p in model.parameters())  # the freeze is undone
    assert not any(b._forward_pre_hooks for _, b in blocks)  # hooks removed
