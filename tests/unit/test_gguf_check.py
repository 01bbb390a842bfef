"""check_gguf: a missing or corrupt GGUF gets one sentence naming the file and what is wrong."""

import numpy as np
import pytest

from pack.fsio import sha256_file
from pack.models.gguf import GGUFError, check_gguf

pytestmark = pytest.mark.throughput


def _write(path, n_vocab=64, d=32, layers=2):
    # Writing a GGUF needs the `gguf` package (pure Python: in the dev extra, and in pack[llamacpp]).
    gguf = pytest.importorskip("gguf", reason="writing a test GGUF needs the gguf package: pip install gguf")

    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_block_count(layers)
    w.add_embedding_length(d)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_key_length(d // 4)
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.standard_normal((n_vocab, d)).astype(np.float32))
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_q.weight", rng.standard_normal((d, d)).astype(np.float16))
    w.add_tensor("output.weight", rng.standard_normal((n_vocab, d)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_good_file_reports_its_tensors(tmp_path):
    info = check_gguf(_write(tmp_path / "m.gguf"))
    assert info.arch == "llama" and info.version == 3
    assert info.tensor_bytes["token_embd.weight"] == 64 * 32 * 4
    assert info.tensor_bytes["blk.0.attn_q.weight"] == 32 * 32 * 2
    assert info.tensor_shapes["token_embd.weight"] == [64, 32]
    assert info.get("block_count") == 2 and info.get("attention.head_count_kv") == 2
    assert info.weight_bytes == 2 * 64 * 32 * 4 + 2 * 32 * 32 * 2


@pytest.mark.parametrize(
    "content, says",
    [
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 4920000000\n", "Git LFS pointer"),
        (b"<!DOCTYPE html><html><body>Access denied</body></html>" * 2, "HTML/XML page"),
        (b'{"error": "not found", "detail": "the repository is gated"}', "JSON file"),
        (b"\x00" * 64, r"not a GGUF file \(it starts with"),
        (b"GGUF", "too short"),
        ((19).to_bytes(8, "little") + b'{"__metadata__":{}}' + b"\x00" * 64, "safetensors file"),
    ],
    ids=["lfs-pointer", "html", "json", "zeros", "short", "safetensors"],
)
def test_not_a_gguf(tmp_path, content, says):
    p = tmp_path / "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    p.write_bytes(content)
    with pytest.raises(GGUFError, match=says) as e:
        check_gguf(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(GGUFError, match="does not exist"):
        check_gguf(tmp_path / "absent.gguf")
    with pytest.raises(GGUFError, match="is a directory"):
        check_gguf(tmp_path)


def test_wrong_version(tmp_path):
    p = _write(tmp_path / "m.gguf")
    data = bytearray(p.read_bytes())
    data[4:8] = (7).to_bytes(4, "little")
    p.write_bytes(bytes(data))
    with pytest.raises(GGUFError, match="format version 7"):
        check_gguf(p)


def test_truncated_tensor_data_names_the_tensor_or_the_damage(tmp_path):
    p = _write(tmp_path / "m.gguf")
    data = p.read_bytes()
    p.write_bytes(data[:-1000])
    with pytest.raises(GGUFError, match=r"truncated: tensor 'output.weight'|is damaged") as e:
        check_gguf(p)
    assert str(p) in str(e.value)
    p.write_bytes(data[:40])  # inside the key/value header
    with pytest.raises(GGUFError, match="damaged|truncated"):
        check_gguf(p)


def test_sha256_mismatch(tmp_path):
    p = _write(tmp_path / "m.gguf")
    assert check_gguf(p, sha256_file(p)).arch == "llama"
    with pytest.raises(GGUFError, match="has sha256 .* not the expected 0000000000000000"):
        check_gguf(p, "0" * 64)
