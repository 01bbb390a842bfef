"""exp5: inference on one CUDA stream while a matmul workload runs on a second stream.

The workload is a background thread issuing `size x size` matmuls on its own stream in bursts,
then sleeping as long as the burst took, so the second stream is busy about `duty_cycle` of the
time (the seed's "~50% GPU utilisation"). Inference runs on a separate non-default stream.

Overlap is proven from a torch.profiler (Kineto) trace of the measured decode: every kernel event
is attributed to the thread that launched it (kernel `correlation` -> CUDA runtime launch event ->
its `tid`); the workload thread's OS thread id is known. If the trace's thread ids cannot be
matched, the stream whose kernels are longest on average (the workload's big matmuls) is taken as
the workload's, and the result says which attribution was used. The overlap fraction is the time during
which an inference kernel and a workload kernel run at once, divided by the inference kernels'
busy time. This module needs CUDA; on a CPU the configuration is NOT-APPLICABLE (configs.why_not).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from pathlib import Path


class ConcurrentWorkload:
    """A context manager running matmuls on their own CUDA stream in a background thread."""

    def __init__(self, size: int = 8192, duty_cycle: float = 0.5, burst: int = 4, device: str = "cuda"):
        if not 0 < duty_cycle < 1:
            raise ValueError("duty_cycle must be between 0 and 1")
        self.size, self.duty, self.burst, self.device = size, duty_cycle, burst, device
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.busy_s = 0.0
        self.launched = 0
        self.native_tid: int | None = None
        self.error: BaseException | None = None
        self.stream = None

    def _loop(self):
        import torch

        try:
            self.native_tid = threading.get_native_id()
            self.stream = torch.cuda.Stream(device=self.device)
            with torch.cuda.stream(self.stream):
                a = torch.randn(self.size, self.size, device=self.device, dtype=torch.bfloat16)
                b = torch.randn(self.size, self.size, device=self.device, dtype=torch.bfloat16)
                self.stream.synchronize()
                self.ready.set()
                while not self.stop.is_set():
                    t0 = time.perf_counter()
                    for _ in range(self.burst):
                        a @ b  # noqa: B018  (the kernel is the point)
                        self.launched += 1
                    self.stream.synchronize()
                    busy = time.perf_counter() - t0
                    self.busy_s += busy
                    self.stop.wait(busy * (1 - self.duty) / self.duty)
        except BaseException as e:  # surfaced by __exit__, never lost in the thread
            self.error = e
            self.ready.set()

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.thread = threading.Thread(target=self._loop, name="pack-concurrent-workload", daemon=True)
        self.thread.start()
        self.ready.wait(timeout=60)
        if self.error:
            raise RuntimeError(f"concurrent workload failed to start: {self.error}")
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=60)
        self.wall_s = time.perf_counter() - self.t0
        if self.error and not exc[0]:
            raise RuntimeError(f"concurrent workload failed: {self.error}")
        return False

    def summary(self) -> dict:
        wall = getattr(self, "wall_s", time.perf_counter() - self.t0)
        return {
            "matmul_size": self.size,
            "matmuls": self.launched,
            "busy_fraction_host": self.busy_s / wall if wall else 0.0,
            "target_duty_cycle": self.duty,
        }


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _length(intervals) -> float:
    return sum(e - s for s, e in intervals)


def _intersection(a, b) -> float:
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def _attribute(kernels: list[dict], launcher: dict, workload_tid: int, main_tid: int | None):
    """Which kernels are the workload's: by launching thread, else by stream (longest mean kernel)."""
    tids = [launcher.get(k.get("args", {}).get("correlation")) for k in kernels]
    if workload_tid in tids:
        return [t == workload_tid for t in tids], "launching thread (workload thread id)"
    if main_tid is not None and main_tid in tids:
        return [t != main_tid for t in tids], "launching thread (everything not launched by the main thread)"
    by_stream: dict = {}
    for k in kernels:
        by_stream.setdefault(k.get("args", {}).get("stream"), []).append(float(k["dur"]))
    if len(by_stream) < 2:
        return [False] * len(kernels), "none (one stream)"
    # the workload's size x size matmuls are far longer than any decode kernel
    work_stream = max(by_stream, key=lambda s: sum(by_stream[s]) / len(by_stream[s]))
    return [
        k.get("args", {}).get("stream") == work_stream for k in kernels
    ], "stream with the longest mean kernel"


def overlap_from_trace(events: list[dict], workload_tid: int, main_tid: int | None = None) -> dict:
    """Overlap of inference and workload kernels in a Kineto chrome trace's `traceEvents`.

    Returns {inference_kernels, workload_kernels, inference_busy_us, workload_busy_us, window_us,
    overlap_us, overlap_fraction (of inference busy time), workload_utilisation (of the window),
    streams {inference: [...], workload: [...]}, attribution}. Raises ValueError when the trace has
    no kernels of one side (then overlap is not proven).
    """
    launcher: dict[int, int] = {}
    for ev in events:
        if ev.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in ev.get("args", {}):
            launcher[ev["args"]["correlation"]] = ev.get("tid")
    kernels = [ev for ev in events if ev.get("cat") == "kernel" and "dur" in ev]
    is_work, how = _attribute(kernels, launcher, workload_tid, main_tid)
    inf, work = [], []
    streams: dict[str, set] = {"inference": set(), "workload": set()}
    for ev, w in zip(kernels, is_work, strict=True):
        side = "workload" if w else "inference"
        (work if w else inf).append((float(ev["ts"]), float(ev["ts"]) + float(ev["dur"])))
        streams[side].add(ev.get("args", {}).get("stream"))
    if not inf or not work:
        raise ValueError(
            f"the trace has {len(inf)} inference and {len(work)} workload kernels; overlap is not proven"
        )
    ui, uw = _union(inf), _union(work)
    start = min(ui[0][0], uw[0][0])
    end = max(ui[-1][1], uw[-1][1])
    ov = _intersection(ui, uw)
    busy_i, busy_w = _length(ui), _length(uw)
    window = max(end - start, 1e-9)
    return {
        "inference_kernels": len(inf),
        "workload_kernels": len(work),
        "inference_busy_us": busy_i,
        "workload_busy_us": busy_w,
        "window_us": window,
        "overlap_us": ov,
        "overlap_fraction": ov / busy_i if busy_i else 0.0,
        "workload_utilisation": busy_w / window,
        "streams": {k: sorted(v, key=str) for k, v in streams.items()},
        "attribution": how,
    }


def load_trace(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    return data["traceEvents"] if isinstance(data, dict) else data


def run_concurrent(decode, *, size: int, duty_cycle: float, trace_path: Path | None, device: str = "cuda"):
    """Run decode(stream, synchronize) on a fresh stream while the workload runs; profile when trace_path.

    Returns (decode's result, facts dict). facts holds the workload summary and, when profiled,
    the overlap analysis and the trace file name (gzip chrome trace).
    """
    import torch

    stream = torch.cuda.Stream(device=device)
    facts: dict = {}
    with ConcurrentWorkload(size=size, duty_cycle=duty_cycle, device=device) as wl:
        time.sleep(0.05)  # let the first burst start, so the decode begins under load
        if trace_path is None:
            with torch.cuda.stream(stream):
                result = decode(stream.synchronize)
        else:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                with torch.cuda.stream(stream):
                    result = decode(stream.synchronize)
            raw = trace_path.with_suffix("")  # .json; gzipped below
            prof.export_chrome_trace(str(raw))
            with open(raw, "rb") as src, gzip.open(trace_path, "wb") as dst:
                dst.write(src.read())
            raw.unlink()
            facts["overlap"] = overlap_from_trace(
                load_trace(trace_path), wl.native_tid, threading.main_thread().native_id
            )
            facts["trace"] = trace_path.name
    facts["workload"] = wl.summary()
    return result, facts
