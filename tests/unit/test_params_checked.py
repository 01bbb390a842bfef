"""Typed experiment params (issue 11, item 3): every row's params are checked against its experiment's
`Params` model at both scales by `pack validate` (and every manifest load), with file:line and
"did you mean"."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from pack import catalog, manifest, registry
from pack.errors import ManifestError
from pack.strict import Strict
from tests.conftest import invoke_cli

ROOT = Path(__file__).resolve().parents[2]


def _home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "home"
    shutil.copytree(ROOT / "manifests", home / "manifests")
    shutil.copytree(ROOT / "expected", home / "expected")
    monkeypatch.setenv("PACK_HOME", str(home))
    manifest._all.cache_clear()
    catalog._hardware.cache_clear()
    catalog._images.cache_clear()
    return home


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def _problems(f: Path) -> str:
    with pytest.raises(ManifestError) as e:
        manifest.load_manifest(f)
    return str(e.value)


def test_every_registered_experiment_has_a_light_params_model():
    for name in registry.EXPERIMENTS:
        model = registry.params_model(name)
        assert issubclass(model, Strict) and issubclass(model, BaseModel), name
    # Loading every Params model imports no backend (pack validate stays light).
    code = (
        "import sys; from pack import registry\n"
        "[registry.params_model(n) for n in registry.EXPERIMENTS]\n"
        "heavy = [m for m in ('torch', 'transformers', 'llama_cpp', 'vllm', 'matplotlib') if m in "
        "sys.modules]\nassert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_repository_rows_pass_their_params_models():
    for m in manifest.all_manifests():
        for r in m.rows:
            model = registry.params_model(r.experiment)
            for scale in manifest.SCALES:
                model.model_validate(r.at(scale).params)


def test_a_typo_in_a_forensics_param_is_found_with_its_line_and_a_hint(tmp_path, monkeypatch):
    f = _home(tmp_path, monkeypatch) / "manifests" / "forensics.yaml"
    f.write_text(
        f.read_text().replace(
            "params: {experiment_type: batch_size, values: [2, 4]}",
            "params: {experiment_type: batch_size, values: [2, 4], decode_stpes: 3}",
        )
    )
    msg = _problems(f)
    line = _line_of(f, "decode_stpes")
    want = f"{f}:{line}: row 'exp1': unknown key 'params.decode_stpes'; did you mean 'decode_steps'?"
    assert want in msg
    from pack import planning

    manifest._all.cache_clear()
    for check in (
        lambda: planning.plan("forensics", "cpu"),  # pack plan
        lambda: planning.launch_plan(["exp1"], "cpu", "smoke", overhead_s=0, grace_s=0),
    ):  # launch
        with pytest.raises(ManifestError) as e:
            check()
        assert want in str(e.value)


def test_a_bad_value_at_one_scale_names_that_scale_and_the_override_line(tmp_path, monkeypatch):
    f = _home(tmp_path, monkeypatch) / "manifests" / "forensics.yaml"
    text = f.read_text()
    assert "smoke: {params: {compile_backend: eager}}" in text
    f.write_text(
        text.replace(
            "smoke: {params: {compile_backend: eager}}", "smoke: {params: {compile_backend: eager, top_k: 0}}"
        )
    )
    msg = _problems(f)
    line = _line_of(f, "top_k: 0")
    assert f"{f}:{line}: row 'exp2' at scale smoke: 'params.top_k'" in msg and "scale full" not in msg


def test_ecmoe_task2_params_are_checked(tmp_path, monkeypatch):
    f = _home(tmp_path, monkeypatch) / "manifests" / "ecmoe.yaml"
    f.write_text(f.read_text().replace("      split_seed: 42\n", "      split_seed: 42\n      bits: 3\n", 1))
    msg = _problems(f)
    assert f"{f}:{_line_of(f, 'bits: 3')}: row 'task2-baseline': 'params.bits'" in msg and "2, 4 or 8" in msg


def _command_row_with_ab(m) -> tuple[int, object] | None:
    for i, r in enumerate(m.rows):
        if r.experiment == "command" and isinstance(r.params.get("ab"), dict):
            return i, r
    return None


def test_a_typo_in_a_command_rows_ab_block_is_found_by_validate(tmp_path, monkeypatch):
    """Whatever `Params` the registry returns for `command` must refuse an unknown key inside params.ab."""
    home = _home(tmp_path, monkeypatch)
    found = None
    for f in sorted((home / "manifests").glob("*.yaml")):
        if f.name in manifest.NON_MANIFESTS:
            continue
        hit = _command_row_with_ab(manifest.load_manifest(f))
        if hit:
            found = f, hit
            break
    assert found, "no command row with params.ab in the manifests"
    f, (_, row) = found
    key = next(iter(row.params["ab"]))
    lines = f.read_text().splitlines()
    # The ab block's first key, written in the manifest under `ab:`; misspell it.
    at = next(n for n, line in enumerate(lines) if line.strip().startswith("ab:"))
    j = next(n for n in range(at, len(lines)) if f"{key}:" in lines[n])
    lines[j] = lines[j].replace(f"{key}:", f"{key}x:", 1)
    f.write_text("\n".join(lines) + "\n")
    res = invoke_cli(["validate"], env={"PACK_HOME": str(home)}, cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{f}:{j + 1}: row '{row.id}'" in res.stderr and f"'params.ab.{key}x'" in res.stderr, res.stderr
    assert "did you mean" in res.stderr
