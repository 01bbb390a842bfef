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


def _imported(args, heavy, cwd) -> list[str]:
    """Which of `heavy` a fresh interpreter running `pack <args>` imported."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=heavy), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    line = [x for x in res.stderr.splitlines() if x.startswith("@@")][-1]
    return json.loads(line[2:])


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
    assert _imported(args, HEAVY, tmp_path) == [], f"{args} imported a backend"


def test_listing_from_the_index_imports_no_pydantic(home, tmp_path):
    """`pack list` is served from the row index: importing pydantic (~70 ms here) would put its start-up
    over 4x `python -c pass` (bench/startup.py: 6.5x before, 2.7x after, 2026-12-03)."""
    _imported(["list"], ("pydantic",), tmp_path)  # the first call may build the index
    assert _imported(["list"], ("pydantic",), tmp_path) == []
