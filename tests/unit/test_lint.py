"""`make lint` as a test: ruff's rules (pyproject [tool.ruff], line length 110 included) hold for the tree,
so a long line or an unused import fails `make test` instead of waiting for someone to run the linter."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _ruff() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return [str(beside)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.skip("ruff is not installed (the dev extra installs it)")


def test_ruff_check_is_clean():
    p = subprocess.run(
        [*_ruff(), "check", "--no-cache", "pack", "tests", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]


def test_ruff_format_is_clean():
    p = subprocess.run(
        [*_ruff(), "format", "--check", "--no-cache", "pack", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
