"""What GPUs this machine has, from NVML (nvidia-ml-py) or nvidia-smi, never from torch.

Used by `pack run` to refuse GPU rows on CPU machines, by provenance for the fingerprint and by
the contamination checks (other processes, clocks, throttle reasons).
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache

THROTTLE_REASONS = {  # NVML clocksEventReasons bits that mean "slower than it should be"
    0x0000000000000004: "power cap (software)",
    0x0000000000000008: "hardware slowdown",
    0x0000000000000020: "thermal slowdown (software)",
    0x0000000000000040: "thermal slowdown (hardware)",
    0x0000000000000080: "power brake (hardware)",
}


def nvml():
    """The initialised pynvml module, or None when NVML (or the package) is not there."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    return pynvml


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


@lru_cache(maxsize=1)
def gpus() -> tuple[dict, ...]:
    """One dict per GPU: index, name, memory_gb, uuid. Empty on a machine without NVIDIA GPUs."""
    nv = nvml()
    if nv is not None:
        out = []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            out.append(
                {
                    "index": i,
                    "name": _text(nv.nvmlDeviceGetName(h)),
                    "memory_gb": round(mem.total / 2**30, 2),
                    "uuid": _text(nv.nvmlDeviceGetUUID(h)),
                }
            )
        return tuple(out)
    smi = shutil.which("nvidia-smi")
    if not smi:
        return ()
    try:
        res = subprocess.run(
            [smi, "--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    out = []
    for line in res.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            out.append(
                {
                    "index": int(parts[0]),
                    "name": parts[1],
                    "memory_gb": round(float(parts[2]) / 1024, 2),
                    "uuid": parts[3],
                }
            )
    return tuple(out)


def driver_version() -> str | None:
    nv = nvml()
    if nv is None:
        return None
    try:
        return _text(nv.nvmlSystemGetDriverVersion())
    except Exception:
        return None


def processes() -> list[dict]:
    """Compute and graphics processes on every GPU (pid, gpu index, used memory in MiB, name)."""
    nv = nvml()
    if nv is None:
        return []
    out = []
    for i in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            try:
                procs = getattr(nv, getter)(h)
            except Exception:
                continue
            for p in procs:
                used = getattr(p, "usedGpuMemory", None)
                out.append(
                    {
                        "gpu": i,
                        "pid": p.pid,
                        "used_mib": None if used is None else round(used / 2**20, 1),
                        "name": _proc_name(p.pid),
                    }
                )
    return out


def _proc_name(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def health(index: int = 0) -> dict:
    """Clocks, utilisation, temperature, power and active throttle reasons of one GPU (NVML only)."""
    nv = nvml()
    if nv is None:
        return {"available": False}
    h = nv.nvmlDeviceGetHandleByIndex(index)
    out: dict = {"available": True}
    probes = {
        "sm_clock_mhz": lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
        "max_sm_clock_mhz": lambda: nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
        "mem_clock_mhz": lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
        "gpu_util_pct": lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu,
        "temperature_c": lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
        "power_w": lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0,
        "throttle_bits": lambda: nv.nvmlDeviceGetCurrentClocksEventReasons(h),
    }
    for k, f in probes.items():
        try:
            out[k] = f()
        except Exception:
            out[k] = None
    bits = out.get("throttle_bits") or 0
    out["throttle_reasons"] = [name for bit, name in THROTTLE_REASONS.items() if bits & bit]
    return out


def has_cuda() -> bool:
    return bool(gpus())
