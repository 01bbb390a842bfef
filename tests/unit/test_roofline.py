"""Bytes read per decode token, the bandwidth bound and the fraction reached."""

import pytest

from pack.experiments.throughput import roofline
from pack.models.gguf import GGUFInfo

pytestmark = pytest.mark.throughput


def _info(tied=False):
    tb = {"token_embd.weight": 32000 * 4096 * 2, "blk.0.attn_q.weight": 1000, "output_norm.weight": 100}
    if not tied:
        tb["output.weight"] = 5000
    return GGUFInfo(
        path=None,
        version=3,
        arch="llama",
        tensor_bytes=tb,
        tensor_shapes={"token_embd.weight": [32000, 4096]},
        metadata={
            "llama.block_count": 32,
            "llama.attention.head_count": 32,
            "llama.attention.head_count_kv": 8,
            "llama.embedding_length": 4096,
        },
    )


def test_gguf_bytes_per_token_reads_one_embedding_row_and_the_kv_cache():
    b = roofline.gguf_bytes_per_token(_info(), position=100)
    assert b["weights"] == 1000 + 100 + 5000 + 4096 * 2
    assert b["kv"] == 2 * 32 * 8 * 128 * 100 * 2  # K and V, 32 layers, 8 KV heads of 128, F16
    tied = roofline.gguf_bytes_per_token(_info(tied=True), position=0)
    assert tied["weights"] == 1000 + 100 + 4096 * 2 + 32000 * 4096 * 2  # the output projection reads it all


def test_roofline_fraction_for_the_seed_numbers():
    # Llama-3.1-8B Q4_K_M: ~4.92 GB per token; an RTX 4060 has 272 GB/s.
    rl = roofline.roofline(39.28, 4.92e9, 272e9)
    assert rl["bound_tok_s"] == pytest.approx(55.28, abs=0.01)
    assert rl["fraction"] == pytest.approx(0.7105, abs=1e-3)


def test_hf_bytes_per_token_on_a_tiny_model():
    torch = pytest.importorskip("torch")
    from pack.models import synthetic

    m = synthetic.build_model("tiny-llama", num_hidden_layers=2)
    b = roofline.hf_bytes_per_token(m, position=10)
    total = sum(p.numel() for p in m.parameters()) * 4
    emb = m.get_input_embeddings().weight
    assert b["weights"] == total - emb.numel() * 4 + emb.shape[1] * 4
    assert b["kv"] == 2 * 2 * 2 * 32 * 10 * 4
    assert torch.is_tensor(emb)


def test_cpu_bandwidth_is_measured_and_given_values_are_used():
    bw = roofline.measure_cpu_bandwidth(mib=16, repeats=2)
    assert bw["bytes_per_s"] > 1e8 and "numpy copy" in bw["method"]
    cache = {}
    assert roofline.device_bandwidth("cuda", cache, given_gbs=272)["bytes_per_s"] == 272e9
    assert cache == {}


def test_cuda_bandwidth_in_a_child_process_keeps_torch_out_of_this_one():
    """A llama.cpp process must never load torch's CUDA stack (the two cuBLAS builds clash): the isolated
    measurement runs in a child. Here (no GPU) the child fails, and its error comes back as the reason."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom pack.experiments.throughput import roofline\n"
        "try:\n    roofline.device_bandwidth('cuda', {}, None, isolate=True)\n"
        "except RuntimeError as e:\n    print('child failed:', str(e)[:80])\n"
        "else:\n    print('measured')\n"
        "print('torch loaded here:', 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stdout
    assert "torch loaded here: False" in out
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        import torch

        assert ("measured" in out) == torch.cuda.is_available()
