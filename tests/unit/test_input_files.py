"""Broken input files and folders (issue 10, classes 5 and 7, input side): one broken manifest does not
hide the others, `pack validate` names every broken file, and a bad PACK_HOME or `env --diff` input is
one sentence naming the path, exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import invoke_cli

ROOT = Path(__file__).resolve().parents[2]


def _pack(*args, home: Path | str | None = None, cwd: Path | None = None):
    return invoke_cli(args, env={"PACK_HOME": None if home is None else str(home)}, cwd=cwd or ROOT)


def _one_sentence(res, *words):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    for w in words:
        assert w in res.stderr, res.stderr


@pytest.fixture()
def home(tmp_path) -> Path:
    h = tmp_path / "home"
    shutil.copytree(ROOT / "manifests", h / "manifests")
    shutil.copytree(ROOT / "expected", h / "expected")
    return h


def _break(home: Path) -> tuple[Path, Path]:
    """A typo in forensics.yaml (a duplicate key) and a binary paperB.yaml."""
    f = home / "manifests" / "forensics.yaml"
    f.write_text(f.read_text().replace("paper: forensics\n", "paper: forensics\npaper: forensics\n", 1))
    b = home / "manifests" / "paperB.yaml"
    b.write_bytes(b"\x00\x01binary")
    return f, b


def test_list_of_one_paper_survives_another_papers_broken_manifest(home):
    f, b = _break(home)
    res = _pack("list", "local-ablation", home=home)
    assert res.returncode == 0, res.stderr
    assert "int6-clip-search" in res.stdout and "exp0" not in res.stdout
    assert f"skipping {f}" in res.stderr and "duplicate key 'paper'" in res.stderr
    assert f"skipping {b}" in res.stderr and "binary" in res.stderr
    again = _pack("list", "local-ablation", home=home)  # from the cached index: still named
    assert again.returncode == 0 and f"skipping {f}" in again.stderr


def test_list_of_everything_lists_the_rest_and_exits_2(home):
    f, _ = _break(home)
    res = _pack("list", home=home)
    assert res.returncode == 2 and "int6-clip-search" in res.stdout and f"skipping {f}" in res.stderr


def test_list_of_the_broken_paper_itself_is_its_error(home):
    f, _ = _break(home)
    _one_sentence(_pack("list", "forensics", home=home), f"{f}:2: duplicate key 'paper'")


def test_validate_reports_every_broken_file(home):
    f, b = _break(home)
    h = home / "manifests" / "hardware.yaml"
    h.write_text(h.read_text() + "hardware: {}\n")
    res = _pack("validate", home=home)
    _one_sentence(
        res, f"{f}:2: duplicate key 'paper'", f"{b}: is a binary file", f"{h}:", "duplicate key 'hardware'"
    )


def test_validate_of_a_folder_or_a_json_list(home, tmp_path):
    (tmp_path / "d.yaml").mkdir()
    _one_sentence(_pack("validate", tmp_path / "d.yaml", home=home), "d.yaml: is a folder")
    (tmp_path / "l.yaml").write_text(json.dumps([1, 2]))
    _one_sentence(
        _pack("validate", tmp_path / "l.yaml", home=home), "l.yaml:1: the top level must be a mapping"
    )


def test_pack_home_that_does_not_exist(tmp_path):
    for cmd in (["list"], ["validate"], ["show", "exp0"], ["plan", "forensics", "--hw", "cpu"]):
        res = _pack(*cmd, home=tmp_path / "nowhere", cwd=tmp_path)
        _one_sentence(res, f"PACK_HOME={tmp_path / 'nowhere'} does not exist")


def test_pack_home_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    _one_sentence(_pack("list", home=tmp_path / "f", cwd=tmp_path), "is not a folder")


def test_pack_home_without_manifests(tmp_path):
    (tmp_path / "empty" / "manifests").mkdir(parents=True)
    _one_sentence(_pack("list", home=tmp_path / "empty", cwd=tmp_path), "holds no paper manifests")
    _one_sentence(_pack("list", home=tmp_path, cwd=tmp_path), "no manifests folder here")


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "is not valid JSON (line 1"),
        ("[1, 2, 3]", "holds a JSON list, not an environment fingerprint"),
        ('{"a": 1}', "not an environment fingerprint"),
        (b"\xff\xfe\x00", "is not UTF-8"),
    ],
)
def test_env_diff_of_malformed_inputs(tmp_path, content, words):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"schema": "pack.env/1", "gpu": {"count": 0}}))
    bad = tmp_path / "bad.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    _one_sentence(_pack("env", "--diff", good, bad), str(bad), words)


def test_env_diff_of_a_folder_without_env_json(tmp_path):
    (tmp_path / "run").mkdir()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"schema": "pack.env/1"}))
    _one_sentence(
        _pack("env", "--diff", tmp_path / "run", good), f"{tmp_path / 'run'}: is a folder without an env.json"
    )
