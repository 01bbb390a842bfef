"""Every subprocess the launchers start goes through here (docker, pack run, aws, ...).

One place means one behaviour: a missing program or a failed command becomes a LaunchError with
one sentence (never a traceback), every command can be traced (PACK_LAUNCH_TRACE=1 prints it to
stderr before it runs), and tests can put a recording stand-in first on PATH to see exactly what
would have run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass

from ..errors import LaunchError


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def which(program: str, env: dict | None = None) -> str | None:
    path = (env or os.environ).get("PATH")
    return shutil.which(program, path=path)


def quote(argv) -> str:
    return shlex.join(str(a) for a in argv)


def _trace(argv) -> None:
    if os.environ.get("PACK_LAUNCH_TRACE") == "1":
        print(f"+ {quote(argv)}", file=sys.stderr, flush=True)


def _resolve(argv: list[str], env: dict | None, hint: str) -> list[str]:
    exe = which(argv[0], env) if os.sep not in argv[0] else argv[0]
    if not exe:
        raise LaunchError(f"'{argv[0]}' is not on PATH; {hint}" if hint else f"'{argv[0]}' is not on PATH")
    return [exe, *argv[1:]]


def run(
    argv,
    *,
    env: dict | None = None,
    cwd=None,
    timeout: float | None = None,
    check: bool = True,
    capture: bool = True,
    input: str | None = None,
    hint: str = "",
) -> Result:
    """Run to completion. check=True turns a non-zero exit into LaunchError naming the command."""
    argv = [str(a) for a in argv]
    full = _resolve(argv, env, hint)
    _trace(argv)
    try:
        res = subprocess.run(
            full,
            env=env,
            cwd=cwd,
            timeout=timeout,
            text=True,
            input=input,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
        )
    except subprocess.TimeoutExpired:
        raise LaunchError(f"`{quote(argv)}` did not finish within {timeout:g} s") from None
    except OSError as e:
        raise LaunchError(f"could not start `{quote(argv)}`: {e.strerror or e}") from None
    out = Result(argv, res.returncode, res.stdout or "", res.stderr or "")
    if check and res.returncode != 0:
        last = (out.stderr.strip() or out.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise LaunchError(f"`{quote(argv)}` exited with status {res.returncode}: {last[0]}")
    return out


def spawn(
    argv,
    *,
    env: dict | None = None,
    cwd=None,
    stdout=None,
    stderr=None,
    new_session: bool = False,
    hint: str = "",
) -> subprocess.Popen:
    """Start without waiting (the caller waits, streams or detaches)."""
    argv = [str(a) for a in argv]
    full = _resolve(argv, env, hint)
    _trace(argv)
    try:
        return subprocess.Popen(
            full, env=env, cwd=cwd, stdout=stdout, stderr=stderr, text=True, start_new_session=new_session
        )
    except OSError as e:
        raise LaunchError(f"could not start `{quote(argv)}`: {e.strerror or e}") from None
