"""The read-only commands must start without torch, transformers, llama_cpp or vllm; piped (not a
terminal, as here) they do not import rich either: it draws only for a terminal (pack/console.py).
This one stays a subprocess: what a fresh interpreter imports is the thing measured."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("torch", "transformers", "llama_cpp", "vllm", "lm_eval", "matplotlib", "rich")

PROBE = """
import sys, json
from pack.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("@@" + json.dumps([m for m in {heavy!r} if m in sys.modules]), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list"],
        ["show", "wire-compression"],
        ["validate"],
        ["plan", "latent-bridge", "--hw", "g6e.xlarge"],
        ["verify", "--help"],
        ["verify"],
    ],
)
def test_light_commands_import_no_backend(args, home, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    line = [x for x in res.stderr.splitlines() if x.startswith("@@")][-1]
    assert json.loads(line[2:]) == [], f"{args} imported {line}"


def test_listing_from_the_index_imports_no_pydantic(home, tmp_path):
    """`pack list` is served from the row index: importing pydantic (~70 ms here) would put its start-up
    over 4x `python -c pass` (bench/startup.py: 6.5x before, 2.7x after, 2026-12-03)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    probe = PROBE.format(heavy=("pydantic",))
    warm = subprocess.run(
        [sys.executable, "-c", probe, "list"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert warm.returncode == 0, warm.stderr[-2000:]  # the first call may build the index
    res = subprocess.run(
        [sys.executable, "-c", probe, "list"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    line = [x for x in res.stderr.splitlines() if x.startswith("@@")][-1]
    assert json.loads(line[2:]) == [], f"pack list imported {line}"
