"""Synthetic models: built-in architecture configs, random-initialised with a fixed seed.

They exercise the real loading, hooking and generation code without any download, and at true
shape (qwen3-30b-a3b) they measure time and memory at scale without the weights.

    tiny-qwen3-moe   CPU tests (14 layers so layer 12 exists; ~1 M params)
    mid-qwen3-moe    quick GPU runs (~0.9 B params, 32 experts top-4)
    qwen3-30b-a3b    the true Qwen3-30B-A3B shape (48 layers, 128 experts top-8, ~30.5 B params)
    tiny-llama       a small dense decoder (throughput / GGUF tests)
    mid-llama        TinyLlama-1.1B's shape (22 layers, 2048 wide, GQA 32/4): GPU throughput runs
    llama3-8b        the Llama-3.1-8B shape (~8 B params; seed 002's receiver, inference timing on a GPU)

The tokenizer is a byte-level BPE trained at first use on the built-in document generator's text
(deterministic), cached under ~/.cache/pack/tokenizers, with a ChatML chat template as Qwen uses.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import ManifestError, require

ARCHS: dict[str, dict] = {
    "tiny-qwen3-moe": dict(
        model_type="qwen3_moe",
        vocab_size=2048,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=14,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        moe_intermediate_size=32,
        num_experts=8,
        num_experts_per_tok=2,
        decoder_sparse_step=1,
        norm_topk_prob=True,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        tie_word_embeddings=False,
        rms_norm_eps=1e-6,
    ),
    "mid-qwen3-moe": dict(
        model_type="qwen3_moe",
        vocab_size=32768,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=16,
        num_attention_heads=16,
        num_key_value_heads=4,
        head_dim=64,
        moe_intermediate_size=512,
        num_experts=32,
        num_experts_per_tok=4,
        decoder_sparse_step=1,
        norm_topk_prob=True,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        tie_word_embeddings=False,
        rms_norm_eps=1e-6,
    ),
    # Qwen3-30B-A3B's published config.json values.
    "qwen3-30b-a3b": dict(
        model_type="qwen3_moe",
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=6144,
        num_hidden_layers=48,
        num_attention_heads=32,
        num_key_value_heads=4,
        head_dim=128,
        moe_intermediate_size=768,
        num_experts=128,
        num_experts_per_tok=8,
        decoder_sparse_step=1,
        norm_topk_prob=True,
        max_position_embeddings=40960,
        rope_theta=1_000_000.0,
        tie_word_embeddings=False,
        rms_norm_eps=1e-6,
    ),
    # Meta-Llama-3.1-8B's shape (seed 002's receiver); rope scaling left out: it only matters past 8K tokens.
    "llama3-8b": dict(
        model_type="llama",
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=131072,
        rope_theta=500000.0,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
    ),
    "tiny-llama": dict(
        model_type="llama",
        vocab_size=2048,
        hidden_size=128,
        intermediate_size=352,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=4096,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
    ),
    # TinyLlama-1.1B's published config.json values (2.2 GB in bf16: decode reads ~2.1 GB per token).
    "mid-llama": dict(
        model_type="llama",
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        head_dim=64,
        max_position_embeddings=2048,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
    ),
}

TOKENIZER_VOCAB = 2048
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' "
    "}}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def names() -> list[str]:
    return sorted(ARCHS)


def arch(name: str) -> dict:
    if name not in ARCHS:
        from ..strict import did_you_mean

        raise ManifestError(f"unknown synthetic model '{name}'; " + did_you_mean(name, names(), n=2))
    return dict(ARCHS[name])


def make_config(name: str, **overrides):
    """A transformers config for a built-in architecture (overrides e.g. num_hidden_layers=2)."""
    transformers = require("transformers", "hf", "synthetic models")
    kw = arch(name) | overrides
    model_type = kw.pop("model_type")
    theta = kw.pop("rope_theta")
    cfg_cls = transformers.AutoConfig.for_model(model_type).__class__
    try:
        cfg = cfg_cls(
            **kw, rope_parameters={"rope_type": "default", "rope_theta": theta}
        )  # transformers >= 5
    except TypeError:
        cfg = cfg_cls(**kw, rope_theta=theta)  # transformers 4.x
    cfg.bos_token_id = None
    cfg.eos_token_id = 2  # <|im_end|>, as in Qwen chat models
    cfg.pad_token_id = 0
    return cfg


def tokenizer_corpus() -> list[str]:
    from ..data.documents import generate_document

    return [generate_document(i, n_words=2000) for i in range(40)]


def build_tokenizer(vocab_size: int = TOKENIZER_VOCAB, cache: Path | None = None):
    """A byte-level BPE tokenizer (PreTrainedTokenizerFast) with ChatML specials and chat template."""
    transformers = require("transformers", "hf", "synthetic tokenizers")
    cache = cache or Path(os.environ.get("PACK_CACHE", Path.home() / ".cache" / "pack")) / "tokenizers"
    corpus = tokenizer_corpus()
    key = hashlib.sha256(json.dumps([vocab_size, SPECIALS, corpus[:2]]).encode()).hexdigest()[:16]
    path = cache / f"bpe-{vocab_size}-{key}"
    if not (path / "tokenizer.json").is_file():
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIALS,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator(corpus, trainer=trainer)
        fast = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tok,
            eos_token="<|im_end|>",
            pad_token="<|endoftext|>",
            additional_special_tokens=["<|im_start|>"],
        )
        fast.chat_template = CHATML
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        fast.save_pretrained(tmp)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, path)
        except OSError:  # another process won the race; use theirs
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    tok = transformers.AutoTokenizer.from_pretrained(str(path))
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML
    return tok


def build_model(
    name: str,
    *,
    seed: int = 0,
    dtype: str = "float32",
    device: str = "cpu",
    attn_implementation: str | None = None,
    **overrides,
):
    """Random-initialise a built-in architecture with a fixed seed, directly on `device`."""
    torch = require("torch", "hf", "synthetic models")
    transformers = require("transformers", "hf", "synthetic models")
    cfg = make_config(name, **overrides)
    if attn_implementation:
        cfg._attn_implementation = attn_implementation
    torch_dtype = getattr(torch, dtype)
    torch.manual_seed(seed)
    if device.startswith("cuda"):
        torch.cuda.manual_seed_all(seed)
    with torch.device(device):
        try:
            model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype)  # transformers >= 5
        except TypeError:
            model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch_dtype)
    model.eval()
    return model


def save(
    name: str, path: Path, *, seed: int = 0, dtype: str = "float32", device: str = "cpu", **overrides
) -> Path:
    """Write a synthetic model + tokenizer with save_pretrained (a real local checkpoint for tests).

    `device` is where the random init runs: the same seed gives different weights on the CPU and
    on CUDA (different generators), so match the device of the model it must equal.
    """
    model = build_model(name, seed=seed, dtype=dtype, device=device, **overrides)
    tok = build_tokenizer()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path
