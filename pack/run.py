"""`pack run`: execute a row's repetitions into runs/<paper>/<row>/<run-id>/ (layout: pack/rundir.py).

A repetition is built in reps/.rep-NNN.tmp and renamed into place when it is done, so a SIGKILL
loses at most the repetition in flight; `--resume` re-checks finished repetitions' checksums and
runs only the rest.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import catalog, fsio, gpuinfo, provenance, registry
from .aggregates import aggregate
from .errors import FilesystemError, MissingInput, NotRunnableHere, PackError, os_error_sentence
from .manifest import Manifest, ResolvedRow
from .results import CACHE, RepResult, RunContext
from .run_lock import RunInUse
from .run_record import RUN_SCHEMA, RepTiming, RunRecord, RunRecordError, RunStatus
from .rundir import REP_FILE, SUMMARY_FILE, RunDir, runs_of

# OSErrors inside an experiment that are the machine's, not the experiment's: a sentence, exit 2.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EISDIR,
}

__all__ = ["RUN_SCHEMA", "aggregate", "check_runnable", "execute", "local_hardware_name"]


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
    where = (
        f"row '{rrow.id}' at scale {rrow.scale} targets {rrow.target.hardware} "
        f"({need.gpu_count}×{need.gpu or 'GPU'}"
    )
    where += f", {need.vram_gb:g} GB)" if need.vram_gb else ")"
    if not have:
        raise NotRunnableHere(
            f"{where} but this machine has no CUDA GPU; run it with --scale smoke here, "
            f"or on a GPU machine with 'pack launch {rrow.id} --hw {rrow.target.hardware}'"
        )
    if len(have) < need.gpu_count:
        raise NotRunnableHere(
            f"{where} but this machine has {len(have)} GPU(s); use a machine with {need.gpu_count}"
        )
    small = [g for g in have[: need.gpu_count] if g["memory_gb"] < 0.9 * need.vram_gb]
    if small:
        g = small[0]
        raise NotRunnableHere(f"{where} but GPU {g['index']} ({g['name']}) has only {g['memory_gb']:g} GB")


def run_id_for(rrow: ResolvedRow) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{rrow.scale}-{rrow.params_hash()[:8]}"


def find_resumable(row_dir: Path, rrow: ResolvedRow) -> RunDir | None:
    """The newest run of this row with the same params that did not finish (not complete, or killed
    before its checksum file was written)."""
    for rd in runs_of(row_dir):
        try:
            rec = rd.record
        except RunRecordError:
            continue
        if rec.params_hash == rrow.params_hash() and (rec.status != RunStatus.complete or not rd.is_sealed()):
            return rd
    return None


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Raise RowTimeout in the main thread after `seconds` (no-op off the main thread or without SIGALRM)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def _fire(signum, frame):
        raise RowTimeout()

    try:
        old = signal.signal(signal.SIGALRM, _fire)
    except ValueError:  # not in the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class _UTCFormatter(logging.Formatter):
    converter = time.gmtime


class _StderrNow(logging.StreamHandler):
    """To sys.stderr as it is at each line: while the progress bar is drawn (pack/console.py) it is the
    bar's proxy, which prints the line above the bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[logging.Logger]:
    """The pack's own log lines for one run: to stderr and appended to run.log (UTC HH:MM:SS stamps)."""
    log = logging.getLogger(f"pack.run.{id(path)}")
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = _UTCFormatter("%(asctime)s %(message)s", datefmt="%H:%M:%S")
    handlers = [_StderrNow(), logging.FileHandler(path, encoding="utf-8")]
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    try:
        yield log
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()


def _new_run_dir(row_dir: Path, rrow: ResolvedRow) -> RunDir:
    """A new, empty run folder; mkdir is the claim, so two processes never share one.

    Runs of a row are ordered by name (newest first in verify, status, bundle): a run that starts in
    the same second as another run of its row, whatever that one's params hash, waits for the next
    second, or its name could sort before the older run's."""
    while True:
        run_id = run_id_for(rrow)
        stamp = run_id.split("-", 1)[0] + "-"
        if row_dir.is_dir() and any(p.name.startswith(stamp) for p in row_dir.iterdir()):
            time.sleep(1.0 - time.time() % 1.0 + 0.01)
            continue
        path = row_dir / run_id
        try:
            path.mkdir(parents=True)
            return RunDir(path)
        except FileExistsError:
            if not path.is_dir():
                raise
            time.sleep(1.0)  # another process claimed this name in this second


def _claim(
    row_dir: Path, rrow: ResolvedRow, resume: bool, stack: contextlib.ExitStack
) -> tuple[RunDir, bool]:
    """(run folder, resumed): the newest unfinished one (resume) or a new one, locked for this process."""
    rd = find_resumable(row_dir, rrow) if resume else None
    if rd is None:
        rd = _new_run_dir(row_dir, rrow)
        stack.enter_context(rd.locked())
        return rd, False
    stack.enter_context(rd.locked())
    rd = RunDir(rd.path)  # read the record again, under the lock
    if rd.record.status == RunStatus.complete and rd.is_sealed():
        raise RunInUse(f"{rd.path} was finished by another pack process meanwhile; nothing to resume")
    # The checksum file is the seal written last; a resumed run is unsealed until it ends again, so a
    # kill during the resume leaves an unfinished run (never a stale seal that reads as tampering).
    rd.sums_path.unlink(missing_ok=True)
    for junk in rd.stale_temp_files():
        junk.unlink()
    fsio.fsync_dir(rd.path)
    fsio.fault_point("after unsealing the resumed run")
    return rd, True


def execute(
    manifest: Manifest,
    rrow: ResolvedRow,
    *,
    runs_root: Path,
    resume: bool = False,
    hw_name: str | None = None,
    seed: int = 0,
) -> Path:
    """Run (or resume) one row at one scale; return the run directory. Raises NotRunnableHere early."""
    hw_name = hw_name or local_hardware_name()
    catalog.resolve_hardware(hw_name, [])  # an unknown --hw / PACK_HW is refused before anything is written
    check_runnable(rrow, hw_name)
    module = registry.load(rrow.row.experiment)
    row_dir = runs_root / manifest.paper / rrow.id
    try:
        with contextlib.ExitStack() as stack:
            rd, resumed = _claim(row_dir, rrow, resume, stack)
            rd.reps_dir.mkdir(exist_ok=True)
            log = stack.enter_context(run_log(rd.log_path))
            if resume and not resumed:
                log.info(f"nothing to resume for {rrow.id} with these params; starting {rd.name}")
            elif resumed:
                log.info(f"resuming {rd.path}")
            previous = rd.record if resumed else None
            _Runner(manifest, rrow, rd, module, log, hw_name, seed, previous).run()
    except OSError as e:  # disk full, read-only folder, a file where a folder must be: the path, the fix
        raise FilesystemError(e, "finished repetitions are kept; continue with --resume") from None
    return rd.path


class _Runner:
    """One execution of a row into one run folder (fresh or resumed)."""

    def __init__(
        self,
        manifest: Manifest,
        rrow: ResolvedRow,
        rd: RunDir,
        module,
        log: logging.Logger,
        hw_name: str,
        seed: int,
        previous: RunRecord | None,
    ):
        self.rrow, self.rd, self.module, self.log = rrow, rd, module, log
        self.hw_name, self.seed = hw_name, seed
        # torch facts (CUDA runtime, cuDNN, TF32 flags) are added at the end, once the experiment has
        # imported torch; a numpy-only row never pays for the import.
        env = provenance.fingerprint(with_torch=False)
        env["gpu_processes_start"] = env.pop("gpu_processes")
        self.env = env
        self.gpu_models = env["gpu"]["models"]
        self.record = RunRecord(
            paper=manifest.paper,
            row=rrow.id,
            run_id=rd.name,
            cell=rrow.row.cell,
            experiment=rrow.row.experiment,
            scale=rrow.scale,
            params=rrow.params,
            params_hash=rrow.params_hash(),
            target=rrow.target.model_dump(),
            hardware=hw_name,
            gpu_models=self.gpu_models,
            hardware_mismatch=catalog.resolve_hardware(hw_name, self.gpu_models).mismatch,
            image=os.environ.get("PACK_IMAGE_VARIANT") or None,
            seed=seed,
            reps_planned=rrow.reps,
            max_runtime_s=rrow.max_runtime_s,
            status=RunStatus.running,
            started_at=(previous.started_at if previous else None) or _now(),
            resumed=previous is not None,
            expected_sha256=_expected_sha256(manifest.paper, rrow.id),
        )
        self.results: list[RepResult] = []
        self.ctx: RunContext | None = None
        self.counters: dict = {}  # shared by every repetition's context: a model loaded in rep 1 counts once
        self.started = time.monotonic()
        self.deadline = self.started + rrow.max_runtime_s

    def _context(self, rep_dir: Path, index: int) -> RunContext:
        return RunContext(
            run_dir=self.rd.path,
            rep_dir=rep_dir,
            rep_index=index,
            reps=self.rrow.reps,
            scale=self.rrow.scale,
            seed=self.seed,
            device="cuda" if self.gpu_models else "cpu",
            hardware=self.hw_name,
            deadline=self.deadline,
            cache=CACHE,
            provenance=self.record.experiment_provenance,
            counters=self.counters,
            previous=list(self.results),
        )

    def run(self) -> None:
        rec, rd, log = self.record, self.rd, self.log
        rd.write_record(rec)
        fsio.write_json_atomic(rd.env_json, self.env)
        try:
            with watchdog(self.rrow.max_runtime_s):
                self._reps()
                summary = self._summary()
                for r in self.results + ([summary] if summary else []):
                    # the first repetition's error is the cause; later ones echo it
                    for k, v in r.errors.items():
                        rec.errors.setdefault(k, str(v))
                    rec.not_applicable.update({k: str(v) for k, v in r.not_applicable.items()})
                    rec.contamination += [str(c) for c in r.contamination if str(c) not in rec.contamination]
                rec.metrics = aggregate(self.results, summary)
                if rec.status != RunStatus.error:
                    rec.status = RunStatus.complete
        except RowTimeout:
            rec.status = RunStatus.error
            rec.errors["__run__"] = (
                f"exceeded the row's max runtime of {self.rrow.max_runtime_s:g} s (watchdog)"
            )
            log.info(rec.errors["__run__"])
        except (PackError, OSError) as e:  # bad input or a filesystem fault: record it, keep what finished
            err = e if isinstance(e, PackError) else FilesystemError(e)
            rec.status = RunStatus.error
            rec.errors["__run__"] = str(err)
            self._finish(best_effort=True)
            if err is e:
                raise
            raise err from None
        except KeyboardInterrupt:
            rec.status = RunStatus.interrupted
            log.info("interrupted; finished repetitions are kept, continue with --resume")
            self._finish(best_effort=True)
            raise
        self._finish()

    def _reps(self) -> None:
        from .console import progress

        with progress(self.rrow.reps, f"{self.rrow.id} ({self.rrow.scale}) reps") as bar:
            self._reps_with(bar)

    def _reps_with(self, bar) -> None:
        rec, rd, log, reps = self.record, self.rd, self.log, self.rrow.reps
        for i in range(reps):
            final = rd.rep_dir(i)
            done = rd.finished_rep(i) if final.exists() else None
            if done is not None:
                log.info(f"rep {i + 1}/{reps}: kept (checksums verified)")
                self.results.append(done)
                rec.reps.append(RepTiming(**rd.rep_doc(i)["timing"], index=i, kept=True))
                bar.kept()
                continue
            if final.exists():  # damaged: keep it for audit, never delete what a run produced
                aside = final.with_name(f"{final.name}.damaged-{int(time.time())}")
                final.rename(aside)
                log.info(f"rep {i + 1}: checksums did not match; moved to {aside.name} and re-running it")
            tmp = rd.rep_tmp(i)
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            fsio.fault_point(f"after creating {tmp.name}")
            self.ctx = self._context(tmp, i)
            log.info(f"rep {i + 1}/{reps}: running {self.rrow.row.experiment}")
            t0, wall0 = time.monotonic(), _now()
            try:
                res = self.module.run_rep(self.rrow.params, self.ctx)
            except (PackError, RowTimeout):
                raise
            except FileNotFoundError as e:  # an input the row names is not there: a sentence, not a traceback
                fsio.write_text_atomic(rd.error_path, traceback.format_exc())  # where, for a maintainer
                how = f"check the paths in the row's params (`pack show {self.rrow.id}`)"
                raise MissingInput(e.filename or e, how) from None
            except OSError as e:
                if e.errno in ENVIRONMENT_ERRNOS:
                    raise FilesystemError(e) from None
                self._crashed(i, e, tmp)
                return
            except Exception as e:  # the experiment crashed: record it, keep what finished
                self._crashed(i, e, tmp)
                return
            timing = {"started_at": wall0, "wall_s": round(time.monotonic() - t0, 6)}
            fsio.write_json_atomic(tmp / REP_FILE, {"index": i, "timing": timing, "result": res.to_json()})
            fsio.write_sums(tmp)
            os.replace(tmp, final)
            fsio.fsync_dir(final.parent)
            fsio.fault_point(f"after renaming {final.name} into place")
            self.results.append(res)
            rec.reps.append(RepTiming(**timing, index=i, kept=False))
            rec.metrics = aggregate(self.results, None)
            rd.write_record(rec)
            log.info(f"rep {i + 1}/{reps}: done in {timing['wall_s']:.2f}s")
            bar.advance()

    def _crashed(self, i: int, e: BaseException, tmp: Path) -> None:
        rec = self.record
        rec.status = RunStatus.error
        rec.errors["__run__"] = f"rep {i + 1} raised {type(e).__name__}: {e}"
        fsio.write_text_atomic(self.rd.error_path, traceback.format_exc())
        self.log.info(f"rep {i + 1} failed: {type(e).__name__}: {e}")
        shutil.rmtree(tmp, ignore_errors=True)

    def _summary(self) -> RepResult | None:
        if self.record.status == RunStatus.error or not hasattr(self.module, "summarize"):
            return None
        sdir = self.rd.summary_dir
        if sdir.exists():
            shutil.rmtree(sdir)
        sdir.mkdir()
        self.ctx = self._context(sdir, self.rrow.reps - 1)
        summary = self.module.summarize(self.rrow.params, self.ctx, self.results)
        fsio.write_json_atomic(sdir / SUMMARY_FILE, summary.to_json())
        return summary

    def _finish(self, best_effort: bool = False) -> None:
        """Record the end and seal the folder (checksum file last). best_effort: the run is already
        failing; a second fault here (a full disk) is logged, and the run stays unfinished, resumable."""
        try:
            self._seal()
        except OSError as e:
            if not best_effort:
                raise
            self.log.info(f"could not finish writing the run's record: {os_error_sentence(e)}")

    def _seal(self) -> None:
        rec, rd = self.record, self.rd
        for partial in rd.partial_reps():  # a repetition that never finished is not a result
            shutil.rmtree(partial, ignore_errors=True)
        fsio.fault_point("after removing unfinished repetitions")
        rec.finished_at = _now()
        rec.wall_s = round(time.monotonic() - self.started, 3)
        rec.counters = dict(self.ctx.counters) if self.ctx else {}
        if rec.counters:
            self.log.info("counters: " + ", ".join(f"{k}={v}" for k, v in rec.counters.items()))
        env = _read_json(rd.env_json) or {}
        env["gpu_processes_end"] = gpuinfo.processes()
        if "torch" in sys.modules:
            env["cuda"] = provenance.torch_facts()
        fsio.write_json_atomic(rd.env_json, env)
        rd.write_record(rec)
        self.log.info(f"run {rec.status.value}: {rd.path}")
        for h in self.log.handlers:  # run.log is complete before it is checksummed
            h.flush()
        fsio.write_sums(rd.path)


@dataclass(frozen=True)
class RowOutcome:
    """What `pack run` did with one row: complete, error (a repetition or an arm failed) or skipped."""

    ref: str  # paper:row
    state: str
    why: str = ""
    run_dir: Path | None = None
    input_error: bool = False  # stopped by a problem the user fixes (a PackError: missing file, bad params)


def outcome_of(ref: str, rd: RunDir) -> RowOutcome:
    rec = rd.record
    if rec.status == RunStatus.complete and not rec.errors:
        return RowOutcome(ref, "complete", "", rd.path)
    errs = dict(rec.errors)
    first = errs.pop("__run__", None)
    parts = ([first] if first else []) + [f"{k}: {v}" for k, v in errs.items()]
    why = parts[0] if parts else f"run status is '{rec.status.value}'"
    if len(parts) > 1:
        why += f" (and {len(parts) - 1} more error(s) in run.json)"
    return RowOutcome(ref, "error", one_line(why), rd.path)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class RunSummary:
    lines: list[str]  # what `pack run` ends with (empty when every row completed cleanly)
    exit_code: int


def run_summary(outcomes: list[RowOutcome]) -> RunSummary:
    """Exit 0: every row that ran completed (and something ran); 1: a repetition or an arm errored;
    2: an input error stopped a row, or nothing ran (every row skipped on this machine). Then one
    line per row."""
    errored = [o for o in outcomes if o.state == "error"]
    skipped = [o for o in outcomes if o.state == "skipped"]
    if not errored and not skipped:
        return RunSummary([], 0)
    code = 1 if errored else (2 if len(skipped) == len(outcomes) else 0)
    if any(o.input_error for o in outcomes):
        code = 2
    head = (
        f"pack run: nothing ran; all {len(skipped)} row(s) were skipped on this machine:"
        if code == 2
        else f"pack run: {len(errored)} of {len(outcomes)} row(s) errored, {len(skipped)} skipped:"
    )
    w = max(len(o.ref) for o in outcomes)
    lines = [head] + [f"  {o.ref:<{w}}  {o.state:<8}  {o.why}".rstrip() for o in outcomes]
    return RunSummary(lines, code)


def _read_json(path: Path):
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _expected_sha256(paper: str, row_id: str) -> str | None:
    """The expectation file this run will be judged by, as it is now (pack status compares it later)."""
    from .expected import path_for

    path = path_for(paper, row_id)
    return fsio.sha256_file(path) if path.is_file() else None
