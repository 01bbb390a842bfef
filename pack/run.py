"""`pack run`: execute a row's repetitions into runs/<paper>/<row>/<run-id>/.

Layout of a run directory:

    run.json          status, params + hash, target, timings per rep, aggregated metrics
    env.json          the environment fingerprint (provenance.fingerprint), GPU processes at start/end
    reps/rep-000/     one folder per repetition: rep.json (metrics), artifacts, its own SHA256SUMS
    summary/          metrics computed over all repetitions (optional, experiment's summarize())
    run.log           what the pack logged
    SHA256SUMS        every file above, written last

A repetition is built in reps/.rep-NNN.tmp and renamed into place when it is done, so a SIGKILL
loses at most the repetition in flight; `--resume` re-checks finished repetitions' checksums and
runs only the rest.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import statistics
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from . import catalog, fsio, gpuinfo, provenance, registry
from .errors import NotRunnableHere, PackError
from .manifest import Manifest, ResolvedRow
from .results import CACHE, RepResult, RunContext

RUN_SCHEMA = "pack.run/1"


class RowTimeout(BaseException):
    """Raised in the main thread when a row exceeds its max runtime (BaseException: not swallowed)."""


def local_hardware_name() -> str:
    """The catalogue name for this machine: PACK_HW if set, else 'cpu' or 'local-gpu'."""
    return os.environ.get("PACK_HW") or ("local-gpu" if gpuinfo.has_cuda() else "cpu")


def check_runnable(rrow: ResolvedRow, hw_name: str) -> None:
    """Refuse, before anything is written, a row this machine cannot run."""
    need = catalog.get_hardware(rrow.target.hardware)
    if need.gpu_count == 0:
        return
    have = list(gpuinfo.gpus())
    where = f"row '{rrow.id}' at scale {rrow.scale} targets {rrow.target.hardware} ({need.gpu_count}×{need.gpu or 'GPU'}"
    where += f", {need.vram_gb:g} GB)" if need.vram_gb else ")"
    if not have:
        raise NotRunnableHere(f"{where} but this machine has no CUDA GPU; run it with --scale smoke here, "
                              f"or on a GPU machine with 'pack launch {rrow.id} --hw {rrow.target.hardware}'")
    if len(have) < need.gpu_count:
        raise NotRunnableHere(f"{where} but this machine has {len(have)} GPU(s); use a machine with {need.gpu_count}")
    small = [g for g in have[: need.gpu_count] if g["memory_gb"] < 0.9 * need.vram_gb]
    if small:
        raise NotRunnableHere(f"{where} but GPU {small[0]['index']} ({small[0]['name']}) has only {small[0]['memory_gb']:g} GB")


def run_id_for(rrow: ResolvedRow) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{rrow.scale}-{rrow.params_hash()[:8]}"


def find_resumable(row_dir: Path, rrow: ResolvedRow) -> Path | None:
    if not row_dir.is_dir():
        return None
    for d in sorted((p for p in row_dir.iterdir() if p.is_dir()), reverse=True):
        rec = _read_json(d / "run.json")
        if rec and rec.get("params_hash") == rrow.params_hash() and rec.get("status") != "complete":
            return d
    return None


def _read_json(path: Path):
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _rep_name(i: int) -> str:
    return f"rep-{i:03d}"


def _finished_rep(rep_dir: Path) -> RepResult | None:
    """A finished repetition's result if its files still match their checksums, else None."""
    if not (rep_dir / "rep.json").is_file() or fsio.check_sums(rep_dir):
        return None
    data = _read_json(rep_dir / "rep.json")
    return RepResult.from_json(data["result"]) if data else None


def aggregate(reps: list[RepResult], summary: RepResult | None) -> dict:
    """name -> {values, n, mean, std, min, max, median}: the verdict-ready form of every metric."""
    names: list[str] = []
    for r in reps + ([summary] if summary else []):
        for k in r.metrics:
            if k not in names:
                names.append(k)
    out = {}
    for name in names:
        values = [r.metrics[name] for r in reps if name in r.metrics]
        if summary and name in summary.metrics:
            values = [summary.metrics[name]] if not values else values
        entry: dict = {"values": values, "n": len(values)}
        nums = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums and len(nums) == len(values):
            finite = [v for v in nums if math.isfinite(v)]
            entry.update(mean=statistics.fmean(finite) if finite else float("nan"),
                         std=statistics.stdev(finite) if len(finite) > 1 else 0.0,
                         min=min(nums), max=max(nums), median=statistics.median(nums))
        out[name] = entry
    return out


class _Log:
    """Tee of the pack's own log lines to stderr and run.log (appended, flushed per line)."""

    def __init__(self, path: Path):
        self.f = open(path, "a", encoding="utf-8")

    def __call__(self, msg: str) -> None:
        line = f"{datetime.now(timezone.utc).strftime('%H:%M:%S')} {msg}"
        print(line, file=sys.stderr, flush=True)
        self.f.write(line + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


def execute(manifest: Manifest, rrow: ResolvedRow, *, runs_root: Path, resume: bool = False,
            hw_name: str | None = None, seed: int = 0) -> Path:
    """Run (or resume) one row at one scale; return the run directory. Raises NotRunnableHere early."""
    hw_name = hw_name or local_hardware_name()
    check_runnable(rrow, hw_name)
    module = registry.load(rrow.row.experiment)
    row_dir = runs_root / manifest.paper / rrow.id
    run_dir = find_resumable(row_dir, rrow) if resume else None
    resumed = run_dir is not None
    if run_dir is None:
        run_dir = row_dir / run_id_for(rrow)
        while run_dir.exists():  # two runs in one second
            time.sleep(1.0)
            run_dir = row_dir / run_id_for(rrow)
    (run_dir / "reps").mkdir(parents=True, exist_ok=True)
    log = _Log(run_dir / "run.log")
    if resume and not resumed:
        log(f"nothing to resume for {rrow.id} with these params; starting {run_dir.name}")
    elif resumed:
        log(f"resuming {run_dir}")

    previous = _read_json(run_dir / "run.json") or {}
    # torch facts (CUDA runtime, cuDNN, TF32 flags) are added at the end, once the experiment has
    # imported torch; a numpy-only row never pays for the import.
    env = provenance.fingerprint(with_torch=False)
    env["gpu_processes_start"] = env.pop("gpu_processes")
    gpu_models = env["gpu"]["models"]
    record = {
        "schema": RUN_SCHEMA,
        "paper": manifest.paper, "row": rrow.id, "run_id": run_dir.name, "cell": rrow.row.cell,
        "experiment": rrow.row.experiment, "scale": rrow.scale, "params": rrow.params,
        "params_hash": rrow.params_hash(), "target": rrow.target.model_dump(),
        "hardware": hw_name, "gpu_models": gpu_models,
        "image": os.environ.get("PACK_IMAGE_VARIANT") or None,
        "seed": seed, "reps_planned": rrow.reps, "max_runtime_s": rrow.max_runtime_s,
        "status": "running", "started_at": previous.get("started_at") or _now(), "resumed": resumed,
        "reps": [], "metrics": {}, "errors": {}, "contamination": [], "not_applicable": {},
    }
    fsio.write_json_atomic(run_dir / "env.json", env)
    fsio.write_json_atomic(run_dir / "run.json", record)

    started = time.monotonic()
    deadline = started + rrow.max_runtime_s
    results: list[RepResult] = []
    ctx = None
    counters: dict = {}  # shared by every repetition's context: a model loaded in rep 1 counts once
    old_handler = _arm_watchdog(rrow.max_runtime_s)
    try:
        for i in range(rrow.reps):
            final = run_dir / "reps" / _rep_name(i)
            done = _finished_rep(final) if final.exists() else None
            if done is not None:
                log(f"rep {i + 1}/{rrow.reps}: kept (checksums verified)")
                results.append(done)
                record["reps"].append(_read_json(final / "rep.json")["timing"] | {"index": i, "kept": True})
                continue
            if final.exists():  # damaged: keep it for audit, never delete what a run produced
                aside = final.with_name(f"{final.name}.damaged-{int(time.time())}")
                final.rename(aside)
                log(f"rep {i + 1}: checksums did not match; moved to {aside.name} and re-running it")
            tmp = run_dir / "reps" / f".{_rep_name(i)}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            ctx = RunContext(run_dir=run_dir, rep_dir=tmp, rep_index=i, reps=rrow.reps, scale=rrow.scale,
                             seed=seed, device="cuda" if gpu_models else "cpu", hardware=hw_name,
                             deadline=deadline, cache=CACHE, provenance=record.setdefault("experiment_provenance", {}),
                             counters=counters)
            log(f"rep {i + 1}/{rrow.reps}: running {rrow.row.experiment}")
            t0, wall0 = time.monotonic(), _now()
            try:
                res = module.run_rep(rrow.params, ctx)
            except PackError:
                raise
            except RowTimeout:
                raise
            except Exception as e:  # the experiment crashed: record it, keep what finished
                record["status"] = "error"
                record["errors"]["__run__"] = f"rep {i + 1} raised {type(e).__name__}: {e}"
                fsio.write_text_atomic(run_dir / "error.txt", traceback.format_exc())
                log(f"rep {i + 1} failed: {type(e).__name__}: {e}")
                shutil.rmtree(tmp, ignore_errors=True)
                break
            timing = {"started_at": wall0, "wall_s": round(time.monotonic() - t0, 6)}
            fsio.write_json_atomic(tmp / "rep.json", {"index": i, "timing": timing, "result": res.to_json()})
            fsio.write_sums(tmp)
            os.replace(tmp, final)
            fsio.fsync_dir(final.parent)
            results.append(res)
            record["reps"].append(timing | {"index": i, "kept": False})
            record["metrics"] = aggregate(results, None)
            fsio.write_json_atomic(run_dir / "run.json", record)
            log(f"rep {i + 1}/{rrow.reps}: done in {timing['wall_s']:.2f}s")
        summary = None
        if record["status"] != "error" and hasattr(module, "summarize"):
            sdir = run_dir / "summary"
            if sdir.exists():
                shutil.rmtree(sdir)
            sdir.mkdir()
            ctx = RunContext(run_dir=run_dir, rep_dir=sdir, rep_index=rrow.reps - 1, reps=rrow.reps, scale=rrow.scale,
                             seed=seed, device="cuda" if gpu_models else "cpu", hardware=hw_name, deadline=deadline,
                             cache=CACHE, provenance=record.setdefault("experiment_provenance", {}), counters=counters)
            summary = module.summarize(rrow.params, ctx, results)
            fsio.write_json_atomic(sdir / "summary.json", summary.to_json())
        for r in results + ([summary] if summary else []):
            for k, v in r.errors.items():  # the first repetition's error is the cause; later ones echo it
                record["errors"].setdefault(k, v)
            record["not_applicable"].update(r.not_applicable)
            record["contamination"] += [c for c in r.contamination if c not in record["contamination"]]
        record["metrics"] = aggregate(results, summary)
        if record["status"] != "error":
            record["status"] = "complete"
    except RowTimeout:
        record["status"] = "error"
        record["errors"]["__run__"] = f"exceeded the row's max runtime of {rrow.max_runtime_s:g} s (watchdog)"
        log(record["errors"]["__run__"])
    except PackError as e:  # bad input met inside a repetition: record it, keep what finished, then tell the user
        record["status"] = "error"
        record["errors"]["__run__"] = str(e)
        _finish(run_dir, record, started, ctx, log)
        raise
    except KeyboardInterrupt:
        record["status"] = "interrupted"
        log("interrupted; finished repetitions are kept, continue with --resume")
        _finish(run_dir, record, started, ctx, log)
        raise
    finally:
        _disarm_watchdog(old_handler)
    _finish(run_dir, record, started, ctx, log)
    return run_dir


def _finish(run_dir: Path, record: dict, started: float, ctx, log) -> None:
    for partial in (run_dir / "reps").glob(".rep-*.tmp"):  # a repetition that never finished is not a result
        shutil.rmtree(partial, ignore_errors=True)
    record["finished_at"] = _now()
    record["wall_s"] = round(time.monotonic() - started, 3)
    record["counters"] = dict(ctx.counters) if ctx else {}
    if record["counters"]:
        log("counters: " + ", ".join(f"{k}={v}" for k, v in record["counters"].items()))
    env = _read_json(run_dir / "env.json") or {}
    env["gpu_processes_end"] = gpuinfo.processes()
    if "torch" in sys.modules:
        env["cuda"] = provenance.torch_facts()
    fsio.write_json_atomic(run_dir / "env.json", env)
    fsio.write_json_atomic(run_dir / "run.json", record)
    log(f"run {record['status']}: {run_dir}")
    log.close()
    fsio.write_sums(run_dir)


def _arm_watchdog(seconds: float):
    if not hasattr(signal, "SIGALRM"):
        return None

    def _fire(signum, frame):
        raise RowTimeout()

    try:
        old = signal.signal(signal.SIGALRM, _fire)
    except ValueError:  # not in the main thread
        return None
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return old


def _disarm_watchdog(old) -> None:
    if old is None:
        return
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
