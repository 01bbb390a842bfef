"""ECMoE hooks on a CUDA device: the journal's device-mismatch fix (2026-02-15 / 2026-02-17) and a
bf16 model forward with hooks. Skipped without CUDA."""

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.ecmoe,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_reconstruction_comes_back_to_the_layers_device():
    from pack.experiments.ecmoe.quantize import quant_dequant

    x = torch.randn(3, 8, 64, device="cuda", dtype=torch.bfloat16)
    y = quant_dequant(x, "absmax", 8, compute_device="cpu")  # compressor on another device
    assert y.device == x.device and y.dtype == x.dtype
    # The same arithmetic on the same device gives the same bits: the reference is computed on the CPU too.
    assert torch.equal(y, quant_dequant(x.cpu(), "absmax", 8).to("cuda"))
    # Against the GPU's own float32 arithmetic, a value that sits on a rounding boundary may land one
    # quantization step away (CPU and GPU division differ in the last ulp), never more, and rarely.
    on_gpu = quant_dequant(x, "absmax", 8)
    step = x.float().abs().amax(dim=-1, keepdim=True) / 127
    diff = (y.float() - on_gpu.float()).abs()
    bf16_ulp = x.float().abs().amax(dim=-1, keepdim=True) * 2.0**-7
    assert bool((diff <= step + bf16_ulp).all())
    assert float((diff > 0).float().mean()) < 0.01


def test_bf16_moe_model_runs_with_hooks_in_both_router_modes():
    from pack.experiments.ecmoe.hooks import attach_compression, find_moe_blocks
    from pack.models.synthetic import build_model

    model = build_model("tiny-qwen3-moe", dtype="bfloat16", device="cuda")
    blocks = find_moe_blocks(model)
    ids = torch.randint(0, 2000, (2, 32), device="cuda")
    with torch.no_grad():
        base = model(ids).logits
        for mode in ("compressed", "uncompressed"):
            with attach_compression(blocks, "absmax", 4, mode, compute_device="cpu"):
                out = model(ids).logits
            assert out.dtype == torch.bfloat16 and out.device.type == "cuda" and not torch.equal(out, base)
