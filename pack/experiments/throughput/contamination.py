"""The NVML half of the contamination verdict: who else is on the GPU, and is it throttling.

    with GpuWatch(own_gpu_processes=lambda: 1) as watch:   # before: snapshot (+ idle check)
        ... timed work ...                                   # during: a thread samples every interval_s
    watch.reasons()                                          # after: snapshot; reasons, each one sentence

Before, during and after the measurement it records NVML's process list and the GPU's
clock-event (throttle) reasons. Another process holding the GPU, or any of the slowdown reasons in
pack.gpuinfo.THROTTLE_REASONS (power cap, thermal, hardware slowdown, power brake) makes the run
CONTAMINATED. Optionally (idle_check) the GPU's utilisation is read after this process has been idle
for `settle_s`: a busy GPU then means somebody else's kernels.

Attributing processes: inside a container NVML reports host PIDs that this PID namespace cannot
see. When any reported PID is invisible here, the watch counts instead: more processes than this
run accounts for (`own_gpu_processes()`) are foreign. Without NVML (no GPU, no nvidia-ml-py) the
watch records that nothing was checked; it never invents a clean bill.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def own_pids() -> set[int]:
    """This process and all its descendants (an engine subprocess holding the GPU is ours)."""
    me = os.getpid()
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [me]
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo += children.get(p, [])
    return out


def foreign_processes(
    procs: list[dict],
    mine: set[int],
    expected_own: int,
    gpu: int = 0,
    pid_visible=lambda pid: os.path.exists(f"/proc/{pid}"),
) -> tuple[list[dict], str]:
    """(foreign processes on `gpu`, how they were attributed: 'pid' or 'count')."""
    on_gpu = [p for p in procs if p.get("gpu", 0) == gpu]
    if all(pid_visible(p["pid"]) for p in on_gpu):
        return [p for p in on_gpu if p["pid"] not in mine], "pid"
    extra = len({p["pid"] for p in on_gpu}) - expected_own
    return (on_gpu[-extra:] if extra > 0 else []), "count"


def judge(snapshots: list[dict], *, idle_util_limit: float = 10.0) -> list[str]:
    """Contamination reasons from a watch's snapshots (pure: tests feed it recorded snapshots).

    A snapshot: {phase: before|during|after, foreign: [proc dicts], attribution: pid|count,
                 throttle_reasons: [names], idle_util_pct: float|None, gpu: index}
    """
    reasons: list[str] = []
    by_phase: dict[str, list[dict]] = {}
    for s in snapshots:
        for p in s.get("foreign") or []:
            by_phase.setdefault(s["phase"], []).append(p)
    if by_phase:
        who: dict = {}
        for phase in ("before", "during", "after"):
            for p in by_phase.get(phase, []):
                key = p.get("pid")
                entry = who.setdefault(key, {"p": p, "phases": []})
                if phase not in entry["phases"]:
                    entry["phases"].append(phase)
        gpu = snapshots[0].get("gpu", 0)
        parts = []
        for e in who.values():
            p = e["p"]
            mem = f", {p['used_mib']:.0f} MiB" if p.get("used_mib") is not None else ""
            name = p.get("name") or "?"
            parts.append(f"pid {p['pid']} ({name}{mem}; seen {'/'.join(e['phases'])})")
        counted = any(s.get("attribution") == "count" for s in snapshots if s.get("foreign"))
        note = " (PIDs from another namespace: counted beyond this run's own)" if counted else ""
        reasons.append(f"another process holds GPU {gpu}{note}: " + "; ".join(parts))
    during = [s for s in snapshots if s["phase"] == "during"]
    seen: dict[str, int] = {}
    for s in snapshots:
        for r in s.get("throttle_reasons") or []:
            seen[r] = seen.get(r, 0) + 1
    if seen:
        n = max(len(during), 1)
        reasons.append(
            "GPU throttled during the measurement: "
            + ", ".join(f"{r} in {c} of {len(snapshots)} samples" for r, c in sorted(seen.items()))
            + ("" if during else f" (no samples during; {n} total)")
        )
    for s in snapshots:
        u = s.get("idle_util_pct")
        if u is not None and u > idle_util_limit:
            reasons.append(
                f"GPU {s.get('gpu', 0)} was {u:.0f}% busy {s['phase']} the measurement while this run was "
                f"idle (limit {idle_util_limit:g}%): someone else's kernels"
            )
    return reasons


class GpuWatch:
    """Samples NVML before, during (a daemon thread) and after a timed block. See the module doc."""

    def __init__(
        self,
        gpu: int = 0,
        *,
        interval_s: float = 0.2,
        own_gpu_processes=lambda: 0,
        idle_check: bool = False,
        settle_s: float = 1.5,
        idle_util_limit: float = 10.0,
    ):
        from ... import gpuinfo

        self.gpuinfo = gpuinfo
        self.available = bool(gpuinfo.gpus()) and gpuinfo.health(gpu).get("available", False)
        self.gpu, self.interval_s, self.own = gpu, interval_s, own_gpu_processes
        self.idle_check, self.settle_s, self.idle_util_limit = idle_check, settle_s, idle_util_limit
        self.snapshots: list[dict] = []
        self._mine: set[int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self, phase: str, idle: bool = False) -> dict:
        if idle:
            time.sleep(self.settle_s)  # let our own last kernels age out of NVML's utilisation window
        health = self.gpuinfo.health(self.gpu)
        if health.get("throttle_bits") is None:  # older nvidia-ml-py: the pre-12.5 name of the same call
            health["throttle_reasons"] = self._legacy_throttle()
        procs = self.gpuinfo.processes()
        # own_pids() walks /proc in Python; in the sampling thread that walk competes with the timed
        # loop for the GIL, so the "during" samples reuse the set from the last full walk and walk
        # again only when a process looks foreign (a child this run started since is then its own).
        if phase != "during" or self._mine is None:
            self._mine = own_pids()
        foreign, how = foreign_processes(procs, self._mine, self.own(), self.gpu)
        if foreign and how == "pid" and phase == "during":
            self._mine = own_pids()
            foreign, how = foreign_processes(procs, self._mine, self.own(), self.gpu)
        snap = {
            "phase": phase,
            "t": time.time(),
            "gpu": self.gpu,
            "foreign": foreign,
            "attribution": how,
            "throttle_reasons": health.get("throttle_reasons") or [],
            "sm_clock_mhz": health.get("sm_clock_mhz"),
            "power_w": health.get("power_w"),
            "temperature_c": health.get("temperature_c"),
            "idle_util_pct": health.get("gpu_util_pct") if idle else None,
        }
        self.snapshots.append(snap)
        return snap

    def _legacy_throttle(self) -> list[str]:
        try:
            import pynvml

            bits = pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(
                pynvml.nvmlDeviceGetHandleByIndex(self.gpu)
            )
        except Exception:
            return []
        return [name for bit, name in self.gpuinfo.THROTTLE_REASONS.items() if bits & bit]

    def _loop(self):
        while not self._stop.wait(self.interval_s):
            try:
                self.snapshot("during")
            except Exception as e:  # NVML hiccup: note it, keep sampling
                self.snapshots.append({"phase": "during", "t": time.time(), "error": str(e)})

    def __enter__(self):
        if self.available:
            self.snapshot("before", idle=self.idle_check)
            self._thread = threading.Thread(target=self._loop, name="pack-gpuwatch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self.snapshot("after")
        return False

    def reasons(self) -> list[str]:
        return judge([s for s in self.snapshots if "error" not in s], idle_util_limit=self.idle_util_limit)

    def record(self) -> dict:
        """A small JSON-able summary for the repetition's info."""
        if not self.available:
            return {
                "checked": False,
                "why": "NVML unavailable (no NVIDIA GPU or nvidia-ml-py): "
                "GPU processes and throttling not checked",
            }
        return {
            "checked": True,
            "samples": len(self.snapshots),
            "during_samples": sum(s["phase"] == "during" for s in self.snapshots),
            "max_temperature_c": max((s.get("temperature_c") or 0 for s in self.snapshots), default=None),
            "min_sm_clock_mhz": min((s.get("sm_clock_mhz") or 0 for s in self.snapshots), default=None),
            "idle_util_pct": [
                s["idle_util_pct"] for s in self.snapshots if s.get("idle_util_pct") is not None
            ],
        }


def gpu_watch_for(params: dict, ctx, own_gpu_processes) -> GpuWatch:
    """The watch a row's params.gpu_watch asks for; the idle check in the first repetition only."""
    w = params.get("gpu_watch") or {}
    return GpuWatch(
        int(w.get("gpu", 0)),
        interval_s=float(w.get("interval_s", 0.2)),
        own_gpu_processes=own_gpu_processes,
        idle_check=bool(w.get("idle_check", True)) and ctx.rep_index == 0,
        settle_s=float(w.get("settle_s", 1.5)),
        idle_util_limit=float(w.get("idle_util_limit", 10.0)),
    )


def engine_gpu_processes() -> int:
    """GPU processes a run that starts engine subprocesses accounts for: its live children, plus
    this process when it has initialised CUDA itself."""
    import sys

    torch = sys.modules.get("torch")
    mine = int(bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()))
    return mine + len(own_pids()) - 1


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes of this machine have been busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuWatch:
    """For rows measured on the CPU: how many cores other processes used during the measurement.

    foreign_cores = (machine busy CPU seconds - this process's CPU seconds) / wall seconds. Above
    `limit_cores` (default 0.5) the measurement shared its cores with someone else's work.
    """

    def __init__(self, enabled: bool = True, limit_cores: float = 0.5):
        self.enabled = enabled and _busy_cpu_seconds() is not None
        self.limit = limit_cores
        self.foreign_cores: float | None = None
        self.load_before = self.load_after = None

    def __enter__(self):
        if self.enabled:
            self._t, self._busy, self._own = time.monotonic(), _busy_cpu_seconds(), _own_cpu_seconds()
            self.load_before = os.getloadavg()[0]
        return self

    def __exit__(self, *exc):
        if self.enabled:
            wall = time.monotonic() - self._t
            busy, own = _busy_cpu_seconds() - self._busy, _own_cpu_seconds() - self._own
            self.foreign_cores = max(0.0, busy - own) / wall if wall > 0 else 0.0
            self.load_after = os.getloadavg()[0]
        return False

    def reasons(self) -> list[str]:
        if not self.enabled or self.foreign_cores is None or self.foreign_cores <= self.limit:
            return []
        return [
            f"other processes used {self.foreign_cores:.2f} of this machine's {os.cpu_count()} CPU cores "
            "during the "
            f"measurement (limit {self.limit:g}; load average {self.load_after:.1f}): the CPU was shared"
        ]

    def record(self) -> dict:
        if not self.enabled:
            return {"checked": False}
        return {
            "checked": True,
            "foreign_cores": round(self.foreign_cores or 0.0, 3),
            "load_before": self.load_before,
            "load_after": self.load_after,
            "limit_cores": self.limit,
        }
