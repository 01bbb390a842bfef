"""Seed 003's int6 vs int8 bits-per-byte, measured on a tiny checkpoint in the PR's real formats:
a torch.save'd parameter-golf state dict, a FineWeb-format token shard and a SentencePiece model."""

import math
import time

import numpy as np
import pytest

from pack.errors import ManifestError
from pack.experiments import int6_clip_search, param_golf
from pack.results import CACHE, RunContext

torch = pytest.importorskip("torch")
spm = pytest.importorskip("sentencepiece")

TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "a stitch in time saves nine, they said",
    "pack your box with five dozen liquor jugs",
    "how vexingly quick daft zebras jump!",
] * 40


@pytest.fixture(scope="module")
def golf(tmp_path_factory):
    d = tmp_path_factory.mktemp("golf")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXT),
        model_prefix=str(d / "tok"),
        vocab_size=64,
        model_type="bpe",
        character_coverage=1.0,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(d / "tok.model"))
    ids = np.array([t for line in TEXT for t in sp.encode(line)], dtype=np.uint16)
    header = np.zeros(256, dtype="<i4")
    header[:3] = [20240520, 1, ids.size]
    (d / "fineweb_val_000000.bin").write_bytes(header.tobytes() + ids.astype("<u2").tobytes())
    sd = int6_clip_search.synthetic_state_dict(2, 32, 64, heads=4, kv_heads=2, mlp_mult=2, seed=3)
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, d / "final_model.pt")
    return d, sp, sd


def _ctx(tmp_path):
    return RunContext(
        run_dir=tmp_path,
        rep_dir=tmp_path,
        rep_index=0,
        reps=1,
        scale="full",
        seed=0,
        device="cpu",
        hardware="cpu",
        deadline=time.monotonic() + 600,
        cache=CACHE,
    )


def _params(d, **kw):
    return {
        "checkpoint": str(d / "final_model.pt"),
        "val_tokens": str(d / "fineweb_val_*.bin"),
        "tokenizer": str(d / "tok.model"),
        "heads": 4,
        "kv_heads": 2,
        "seq_len": 16,
        "max_val_seqs": 8,
        "keep_float_max_numel": 256,
        **kw,
    }


def test_bits_per_byte_matches_an_independent_computation(golf):
    """Blocks that add nothing (zero projections, zero skips): logits = 30 tanh(rms(e) @ E.T / 30)."""
    d, sp, sd = golf
    sd = dict(sd)
    for k in sd:
        if k.endswith("proj.weight") or k == "skip_weights":
            sd[k] = np.zeros_like(sd[k])
    tokens = param_golf.load_tokens(str(d / "fineweb_val_*.bin"), 16, 8)
    got = param_golf.val_bpb(
        sd,
        tokens,
        param_golf.byte_luts(str(d / "tok.model"), 64),
        seq_len=16,
        heads=4,
        kv_heads=2,
        rope_dims=0,
        ln_scale=False,
    )
    emb = sd["tok_emb.weight"].astype(np.float64)
    x = emb[tokens[:-1]]
    x = x / np.sqrt((x * x).mean(axis=1, keepdims=True) + np.finfo(np.float32).eps)
    logits = 30 * np.tanh(x @ emb.T / 30)
    logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    nats = float((logz - logits[np.arange(len(x)), tokens[1:]]).sum())
    n_bytes = 0
    for prev, tgt in zip(tokens[:-1], tokens[1:], strict=True):
        piece = sp.id_to_piece(int(tgt))
        n_bytes += len(piece.lstrip("\u2581").encode()) + (
            piece.startswith("\u2581") and not sp.is_control(int(prev))
        )
    assert got == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-4)


def test_int6_vs_int8_bpb_is_measured_and_the_checkpoint_identified(golf, tmp_path):
    d, _, sd = golf
    res = int6_clip_search.run_rep(_params(d, rope_dims=4, ln_scale=True), _ctx(tmp_path))
    m = res.metrics
    assert "val_bpb_delta" not in res.not_applicable
    assert m["val_bpb_delta"] == pytest.approx(m["int6.val_bpb"] - m["int8.val_bpb"])
    assert m["int6.val_bpb"] != m["int8.val_bpb"] and 0 < m["int8.val_bpb"] < 20
    assert m["int6.zlib_bytes"] < m["int8.zlib_bytes"] and m["int6.rel_rmse"] > m["int8.rel_rmse"]
    assert len(m["checkpoint_sha256"]) == 64
    assert res.info["checkpoint_layout_sha256"] == int6_clip_search.layout_sha256(sd)
    # partial RoPE changes what the model computes, so the switch reaches the model
    full_rope = int6_clip_search.run_rep(_params(d, rope_dims=0, ln_scale=True), _ctx(tmp_path))
    assert full_rope.metrics["int8.val_bpb"] != m["int8.val_bpb"]


def test_a_checkpoint_of_another_layout_is_refused_before_measuring(golf, tmp_path):
    d, _, _ = golf
    pr_layout = "5d2c6e8f19d6e28392517d2d4dbc6e748161dead3a52d920583c4cb85cba1900"
    with pytest.raises(ManifestError, match=r"has the tensor layout .* not the 5d2c6e8f19d6"):
        int6_clip_search.run_rep(_params(d, checkpoint_layout_sha256=pr_layout), _ctx(tmp_path))
    with pytest.raises(ManifestError, match=r"no validation shard matches .*params.val_tokens"):
        int6_clip_search.run_rep(_params(d, val_tokens=str(d / "nothing_*.bin")), _ctx(tmp_path))


def test_the_pr_layout_is_what_its_train_log_counts():
    sd = int6_clip_search.synthetic_state_dict(9, 512, 1024, 8, 4, 2, 0)
    assert sum(v.size for v in sd.values()) == 17059912  # train.log: model_params:17059912
    assert (
        int6_clip_search.layout_sha256(sd)
        == "5d2c6e8f19d6e28392517d2d4dbc6e748161dead3a52d920583c4cb85cba1900"
    )
