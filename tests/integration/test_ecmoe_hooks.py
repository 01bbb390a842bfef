"""Pre-hooks on a real transformers Qwen3-MoE block: what the router and the experts see in each
router mode, the journal's dtype bug, hook removal, and the metrics watcher."""

import pytest
import torch

from pack.errors import ManifestError
from pack.experiments.ecmoe.hooks import StateWatcher, attach_compression, find_moe_blocks
from pack.experiments.ecmoe.quantize import ReconStats, quant_dequant

pytestmark = pytest.mark.ecmoe


def _block(dtype=torch.float32):
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    from pack.models.synthetic import make_config

    torch.manual_seed(0)
    block = Qwen3MoeSparseMoeBlock(make_config("tiny-qwen3-moe"))
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return block.to(dtype).eval()


def _seen(block, x):
    """(router input, experts input) of one forward."""
    got = {}
    h1 = block.gate.register_forward_pre_hook(lambda m, a: got.__setitem__("gate", a[0].clone()))
    h2 = block.experts.register_forward_pre_hook(lambda m, a: got.__setitem__("experts", a[0].clone()))
    with torch.no_grad():
        out = block(x)
    h1.remove()
    h2.remove()
    return got["gate"], got["experts"], out


def test_router_modes_decide_what_the_router_sees():
    block = _block()
    x = torch.randn(2, 7, 64) * 3
    q = quant_dequant(x, "absmax", 2).reshape(-1, 64)
    blocks = [("mlp", block)]
    with attach_compression(blocks, "absmax", 2, "compressed"):
        gate, experts, out_c = _seen(block, x)
    assert torch.equal(gate, q) and torch.equal(experts, q)
    with attach_compression(blocks, "absmax", 2, "uncompressed"):
        gate, experts, out_u = _seen(block, x)
    assert torch.equal(gate, x.reshape(-1, 64)) and torch.equal(experts, q)
    assert not torch.allclose(out_c, out_u)  # INT2 changes the routing decision for some tokens
    _, _, out_plain = _seen(block, x)
    with torch.no_grad():
        assert torch.equal(out_plain, block(x))  # hooks gone after the with-block


def test_bf16_block_gets_bf16_back():
    block = _block(torch.bfloat16)
    x = torch.randn(1, 5, 64, dtype=torch.bfloat16)
    with attach_compression([("mlp", block)], "zeropoint", 4, "uncompressed"), torch.no_grad():
        assert block(x).dtype == torch.bfloat16
    # The journal's 2026-02-11 bug, reproduced: handing float32 to a bf16 block fails.
    bad = block.register_forward_pre_hook(lambda m, a: (a[0].float(),))
    with pytest.raises(RuntimeError), torch.no_grad():
        block(x)
    bad.remove()


def test_a_block_without_router_cannot_run_uncompressed():
    class Experts(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.experts = torch.nn.Linear(4, 4)
            self.gate = None

    with pytest.raises(ManifestError, match="has no router submodule"):
        attach_compression([("layers.0.mlp", Experts())], "absmax", 8, "uncompressed")
    with pytest.raises(ManifestError, match="not a router mode"):
        attach_compression([("mlp", _block())], "absmax", 8, "sideways")


def test_dense_model_says_what_it_found():
    from pack.models.synthetic import build_model

    with pytest.raises(
        ManifestError, match=r"synthetic:tiny-llama \(LlamaForCausalLM\) has no MoE blocks: .*LlamaMLP x4"
    ):
        find_moe_blocks(build_model("tiny-llama"), "synthetic:tiny-llama")


def test_watcher_uses_masked_tokens_only_and_matches_offline_stats():
    block = _block()
    x = torch.randn(2, 6, 64)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 2:5] = True
    mask[1, 4] = True
    w = StateWatcher([("absmax", 4)], max_tokens=3)
    with w.attach([("mlp", block)]), torch.no_grad():
        w.mask = mask
        block(x)
    assert w.seen == {0: 3}  # 4 masked tokens, budget 3
    ref = ReconStats()
    picked = x.reshape(-1, 64)[mask.reshape(-1)][:3]
    ref.add(0, picked, quant_dequant(picked, "absmax", 4))
    assert w.summary()[("absmax", 4)] == pytest.approx(ref.summary())
