"""Shared fixtures: a throwaway project home (copies of manifests/ and expected/) and a `pack` runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A project home with copies of the real catalogues, manifests and expectations."""
    h = tmp_path / "home"
    shutil.copytree(REPO / "manifests", h / "manifests")
    shutil.copytree(REPO / "expected", h / "expected")
    monkeypatch.setenv("PACK_HOME", str(h))
    monkeypatch.setenv("PACK_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("PACK_DEBUG", raising=False)
    return h


def invoke_cli(args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Run the real CLI in-process through click's CliRunner: the same `pack.cli.main` the console
    script calls (its error handling and exit codes included), stdout and stderr apart, as a
    CompletedProcess. Each call starts as a fresh process would: in `cwd`, with `env` applied (None
    unsets a variable) and the manifest and catalogue caches cleared. A test that kills the process
    (PACK_FAULT_AT) or checks what is imported needs a real subprocess (tests/unit/test_cli_light.py)."""
    from click.testing import CliRunner

    from pack import catalog, manifest
    from pack.cli import main

    args = [str(a) for a in args]
    env = {k: (None if v is None else str(v)) for k, v in (env or {}).items()}
    assert "PACK_FAULT_AT" not in env, "a fault that kills the process needs a subprocess"
    for cached in (catalog._hardware, catalog._images, manifest._all):
        cached.cache_clear()
    try:  # click 8.1 mixes stderr into stdout unless told; 8.2 always keeps them apart (and has no flag)
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    here, code = os.getcwd(), 0
    with runner.isolation(env=env) as streams:
        out, err = streams[0], streams[1]
        try:
            os.chdir(cwd or here)
            main(args)
        except SystemExit as e:
            if isinstance(e.code, str):  # sys.exit("text"): Python prints it and exits 1
                sys.stderr.write(e.code + "\n")
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            os.chdir(here)
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return subprocess.CompletedProcess(["pack", *args], code, stdout, stderr)


@pytest.fixture
def pack(home, tmp_path):
    """The real CLI, in-process (invoke_cli) in tmp_path: pack(*args) -> CompletedProcess."""

    def run(*args, env=None, check=None):
        res = invoke_cli(args, env=env, cwd=tmp_path)
        if check is not None:
            assert res.returncode == check, (
                f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
            )
        return res

    return run


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def author_script(tmp_path) -> Path:
    """A small 'author engine' the command tests run: prints metric lines per its flags."""
    return write(
        tmp_path / "engine.py",
        """
        import json, os, sys, time
        args = sys.argv[1:]
        if "--version" in args:
            print("engine 1.2.3"); sys.exit(0)
        if "--crash" in args:
            print("loading model"); print("fatal: out of memory", file=sys.stderr); sys.exit(3)
        if "--mute" in args:
            print("nothing useful here"); sys.exit(0)
        sleep = float(os.environ.get("ENGINE_SLEEP", "0"))
        time.sleep(sleep)
        speed = 40.0 - (1.5 if "--compress" in args else 0.0)
        print(f"Decode-only: prefill 12.3 ms, {speed:.2f} tok/s")
        print("[PPL-JSON] " + json.dumps({"ppl": 6.1234, "nll": 1.8121}))
        """,
    )
