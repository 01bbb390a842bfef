"""dense_quant: typed params, the evaluation text's presence and pin (no model needed)."""

from __future__ import annotations

import hashlib

import pytest

from pack.errors import ManifestError, PackError
from pack.experiments import dense_quant


def test_params_defaults_and_refusals():
    p = dense_quant.parse({"model": "synthetic:tiny-llama"})
    assert p.bits == [8, 4, 2] and p.methods == ["absmax", "zeropoint"] and p.text == dense_quant.DEFAULT_TEXT
    with pytest.raises(ManifestError, match="params.bits"):
        dense_quant.parse({"model": "m", "bits": [3]})
    with pytest.raises(ManifestError, match="params.ctx_toknes"):
        dense_quant.parse({"model": "m", "ctx_toknes": 5})
    with pytest.raises(ManifestError, match="params.text_sha256"):
        dense_quant.parse({"model": "m", "text_sha256": "abc"})


def test_text_absent_or_other_version_is_refused(tmp_path):
    missing = dense_quant.parse({"model": "m", "text": str(tmp_path / "nope.txt")})
    with pytest.raises(PackError, match="does not exist on this machine"):
        dense_quant.read_text(missing)
    f = tmp_path / "t.txt"
    f.write_text("hello world\n")
    sha = hashlib.sha256(b"hello world\n").hexdigest()
    text, facts = dense_quant.read_text(dense_quant.parse({"model": "m", "text": str(f), "text_sha256": sha}))
    assert text == "hello world\n" and facts == {"path": str(f), "sha256": sha, "bytes": 12}
    with pytest.raises(PackError, match="another version of the file"):
        dense_quant.read_text(dense_quant.parse({"model": "m", "text": str(f), "text_sha256": "0" * 64}))
