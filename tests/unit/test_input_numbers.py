"""Numbers a rule or a limit depends on: NaN, inf, overflowing literals, bools and numeric text are
refused by the models and by `pack validate`, with file:line (issue 10, class 3, validate side)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pack import catalog, manifest
from pack.errors import ManifestError

ROOT = Path(__file__).resolve().parents[2]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

bad_numbers = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 10**400, True, False]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),  # numeric text
    st.integers().map(str),
)
ROW = {"id": "r", "cell": "c", "experiment": "command", "target": {"hardware": "cpu"}}


@pytest.mark.parametrize("field", ["max_runtime_s", "runtime_estimate_s", "reps"])
@given(value=bad_numbers)
@FAST
def test_row_limits_refuse_non_finite_and_text(field, value):
    with pytest.raises(ValidationError):
        manifest.Row.model_validate({**ROW, field: value})
    with pytest.raises(ValidationError):
        manifest.ScaleProfile.model_validate({field: value})


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_runtime_s", 1e308),
        ("runtime_estimate_s", 1e12),
        ("reps", 10**9),
        ("max_runtime_s", 0),
        ("reps", 0),
        ("runtime_estimate_s", -1),
        ("reps", 2.0),
    ],
)
def test_row_limits_refuse_out_of_bounds(field, value):
    with pytest.raises(ValidationError):
        manifest.Row.model_validate({**ROW, field: value})


@given(
    seconds=st.floats(min_value=0.001, max_value=manifest.MAX_SECONDS), reps=st.integers(1, manifest.MAX_REPS)
)
@FAST
def test_row_limits_accept_sane_values(seconds, reps):
    r = manifest.Row.model_validate(
        {**ROW, "max_runtime_s": seconds, "runtime_estimate_s": seconds, "reps": reps}
    )
    assert r.max_runtime_s == seconds and r.reps == reps


@pytest.mark.parametrize("field", ["ram_gb", "vram_gb", "gpu_count"])
@given(value=bad_numbers)
@FAST
def test_catalogue_numbers_refuse_non_finite_and_text(field, value):
    with pytest.raises(ValidationError):
        catalog.Hardware.model_validate({"provider": "aws", field: value})


def _home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "home"
    shutil.copytree(ROOT / "manifests", home / "manifests")
    (home / "expected").mkdir()
    monkeypatch.setenv("PACK_HOME", str(home))
    manifest._all.cache_clear()
    catalog._hardware.cache_clear()
    catalog._images.cache_clear()
    return home


@pytest.mark.parametrize(
    "literal, words",
    [
        (".nan", "finite number"),
        (".inf", "finite number"),
        ("1.0e+400", "finite number"),
        ("'600'", "not the text '600'"),
        ("1e3", "not the text '1e3'"),
        ("true", "not true"),
    ],
)
def test_validate_names_file_and_line_of_a_bad_limit(tmp_path, monkeypatch, literal, words):
    home = _home(tmp_path, monkeypatch)
    f = home / "manifests" / "local-ablation.yaml"
    lines = f.read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if line.strip().startswith("max_runtime_s:"))
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = f"{indent}max_runtime_s: {literal}"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as e:
        manifest.load_manifest(f)
    assert f"{f}:{i + 1}: " in str(e.value) and words in str(e.value)


def test_validate_names_a_bad_price(tmp_path, monkeypatch):
    """Prices live in the pack's SkyPilot catalog (issue 16): a NaN there names the file and line."""
    home = _home(tmp_path, monkeypatch)
    catalog._cloud_rows.cache_clear()
    f = home / "manifests" / "sky-catalog" / "v8" / "aws" / "vms.csv"
    lines = f.read_text().splitlines()
    lines[1] = lines[1].replace(",1.861,", ",nan,")
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as e:
        catalog.price("g6e.xlarge")
    catalog._cloud_rows.cache_clear()
    assert f"{f}:2: " in str(e.value) and "Price 'nan'" in str(e.value)
