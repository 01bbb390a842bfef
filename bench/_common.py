"""Helpers shared by the benchmarks: run a command N times, interleaved, and take medians."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time


def timed(cmd: list[str], env=None, cwd=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def interleaved(cmds: dict[str, list[str]], n: int, env=None, cwd=None) -> dict[str, float]:
    """Median wall time of each command, running them in turn n times so drift hits all alike."""
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for c in cmds.values():  # warm-up: page cache, .pyc files
        timed(c, env, cwd)
    for _ in range(n):
        for k, c in cmds.items():
            times[k].append(timed(c, env, cwd))
    return {k: statistics.median(v) for k, v in times.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
