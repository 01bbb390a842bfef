"""The one YAML door (pack/yamlio.py): hostile and broken YAML is one sentence naming the file, fast."""

from __future__ import annotations

import json
import re
import string
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pack import yamlio
from pack.errors import ManifestError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load(tmp_path: Path, content: str | bytes, expect=None, name="f.yaml"):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return yamlio.load_with_lines(p, expect=expect)


def _error(tmp_path: Path, content, expect=None, name="f.yaml") -> str:
    with pytest.raises(ManifestError) as e:
        _load(tmp_path, content, expect, name)
    msg = str(e.value)
    assert str(tmp_path / name) in msg, msg  # every error names the file
    assert "Traceback" not in msg
    return msg


def _laughs(levels: int, width: int = 9) -> str:
    out = ["a0: &a0 [lol]"]
    for i in range(1, levels):
        out.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(out) + "\n"


def test_billion_laughs_is_refused_fast(tmp_path):
    t0 = time.perf_counter()
    msg = _error(tmp_path, _laughs(10))  # 9**9 = 387 million nodes if expanded
    assert time.perf_counter() - t0 < 2.0
    assert "billion laughs" in msg and re.search(r"f\.yaml:\d+:", msg)


@given(levels=st.integers(3, 12), width=st.integers(6, 12))
@FAST
def test_every_alias_bomb_is_refused(tmp_path, levels, width):
    if width ** (levels - 1) <= yamlio.MAX_NODES:
        return  # small enough to be a legitimate document
    t0 = time.perf_counter()
    with pytest.raises(ManifestError, match="billion laughs"):
        _load(tmp_path, _laughs(levels, width))
    assert time.perf_counter() - t0 < 2.0


def test_plain_anchors_and_merge_keys_still_work_and_keep_lines(tmp_path):
    data, lines = _load(tmp_path, "base: &b\n  x: 1\n  y: 2\nrow:\n  <<: *b\n  y: 3\n")
    assert data == {"base": {"x": 1, "y": 2}, "row": {"x": 1, "y": 3}}
    assert lines[("row", "y")] == 6 and lines[("row", "x")] == 2  # a merged key points at the anchor's line


def test_recursive_alias_is_refused(tmp_path):
    assert "contains it" in _error(tmp_path, "a: &x [1, *x]\n")


@given(depth=st.integers(yamlio.MAX_DEPTH + 1, 3000), flow=st.booleans())
@FAST
def test_deep_nesting_is_refused_with_a_line(tmp_path, depth, flow):
    text = "[" * depth + "]" * depth if flow else "".join(" " * i + "- \n" for i in range(depth))
    with pytest.raises(ManifestError, match=r"f\.yaml:\d+: nesting deeper than"):
        _load(tmp_path, text)


def test_nesting_up_to_the_limit_is_fine(tmp_path):
    d = yamlio.MAX_DEPTH - 1
    data, _ = _load(tmp_path, "[" * d + "]" * d)
    assert isinstance(data, list)


keys = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8)


@given(ks=st.lists(keys, min_size=1, max_size=6, unique=True), dup=st.data())
@FAST
def test_duplicate_keys_are_refused_with_both_lines(tmp_path, ks, dup):
    twice = dup.draw(st.sampled_from(ks))
    body = [f"{k}: {i}" for i, k in enumerate(ks)]
    at = dup.draw(st.integers(ks.index(twice) + 1, len(body)))
    body.insert(at, f"{twice}: again")
    text = "top:\n" + "".join(f"  {line}\n" for line in body)
    msg = _error(tmp_path, text)
    first, second = ks.index(twice) + 2, at + 2
    assert f"f.yaml:{second}: duplicate key '{twice}' (first given at line {first})" in msg


def test_same_key_in_different_mappings_is_fine(tmp_path):
    data, _ = _load(tmp_path, "a: {x: 1}\nb: {x: 2}\n")
    assert data == {"a": {"x": 1}, "b": {"x": 2}}


@given(junk=st.binary(min_size=1, max_size=40))
@FAST
def test_non_utf8_bytes_are_one_sentence(tmp_path, junk):
    content = b"a: 1\nb: " + junk + b"\n"
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        msg = _error(tmp_path, content)
        assert "UTF-8" in msg or "binary" in msg
        return
    # valid UTF-8: either it parses, or the error is still one sentence naming the file
    try:
        _load(tmp_path, content)
    except ManifestError as e:
        assert str(tmp_path / "f.yaml") in str(e)


@given(text=st.text(max_size=200))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_text_parses_or_is_one_sentence(tmp_path, text):
    try:
        _load(tmp_path, text)
    except ManifestError as e:
        for problem in e.problems:
            assert str(tmp_path / "f.yaml") in problem and "\n" not in problem


@pytest.mark.parametrize(
    "content, expect, words",
    [
        (b"\x00\x01\x02ELF", None, "binary file"),
        ("[1, 2, 3]\n", dict, "must be a mapping (key: value lines), but this file holds a list"),
        (json.dumps([{"a": 1}]), dict, "holds a list"),
        ("just text\n", dict, "holds a single str value"),
        ("", dict, "the file is empty"),
        ("a: 1\n---\nb: 2\n", None, "more than one YAML document"),
        ("a: [1, 2\n", None, "malformed YAML"),
        ("a: !!python/object/apply:os.system ['true']\n", None, "malformed YAML"),
        ("a: \x07\n", None, "control character U+0007"),
    ],
)
def test_wrong_file_contents(tmp_path, content, expect, words):
    assert words in _error(tmp_path, content, expect)


def test_a_folder_or_a_missing_file(tmp_path):
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(ManifestError, match=r"d\.yaml: is a folder, not a YAML file"):
        yamlio.load_with_lines(tmp_path / "d.yaml")
    with pytest.raises(ManifestError, match=r"nope\.yaml: file not found"):
        yamlio.load_with_lines(tmp_path / "nope.yaml")


def test_oversized_file_is_refused_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr(yamlio, "MAX_BYTES", 100)
    assert "larger than the 100" in _error(tmp_path, "a: " + "x" * 200 + "\n")


@pytest.mark.parametrize(
    "text, value",
    [
        ("v: .nan\n", "nan"),
        ("v: .inf\n", float("inf")),
        ("v: 1.0e+400\n", float("inf")),
        ("v: 1e-4\n", "1e-4"),  # YAML 1.1: no dot, so text (a command line keeps it verbatim)
        ("v: 2026-11-22\n", "2026-11-22"),  # dates stay text
        ("v: 0x10\n", 16),
        ("v: yes\n", True),
    ],
)
def test_odd_scalars_are_read_as_documented(tmp_path, text, value):
    data, _ = _load(tmp_path, text)
    if value == "nan":
        assert data["v"] != data["v"]
    else:
        assert data["v"] == value and type(data["v"]) is type(value)


def test_every_yaml_the_pack_reads_goes_through_yamlio():
    """No other module parses YAML itself (the one door)."""
    root = Path(__file__).resolve().parents[2] / "pack"
    parses = re.compile(r"yaml\.(safe_)?(load|compose|full_load|unsafe_load)\b")
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.name != "yamlio.py" and parses.search(p.read_text())
    ]
    assert offenders == []


def test_the_repository_yaml_files_load():
    root = Path(__file__).resolve().parents[2]
    files = [
        *root.glob("manifests/*.yaml"),
        *root.glob("expected/*/*.yaml"),
        root / "pack/launch/providers.yaml",
    ]
    for f in files:
        data, lines = yamlio.load_with_lines(f, expect=dict)
        assert data == yaml.safe_load(f.read_text()), f  # none of them has an unquoted date
