"""The `command` experiment: run an author's script or binary per arm and parse its output.

params:
    executable: name on PATH or a path            (or `script`, resolved inside `repo`)
    script: path of a script in the author's repository
    repo: the repository root (default $PACK_AUTHOR_REPO, else the current directory; a relative
          repo whose script is not under the current directory is looked up under the project root)
    interpreter: program that runs `script` (e.g. python3); omitted -> the script runs directly
    interpreter_args: [arguments between the interpreter and the script], e.g. torchrun's [--nproc_per_node=4]
    args: [common arguments]       env: {COMMON: value}
    arms: {name: {args: [...], env: {...}, once: false}}   run in declared order each repetition
                                   (A B A B ...); once: true runs the arm in the first repetition only
    {name} in an argument is replaced by params[name]; an argument that is exactly "{name}" with a
    list value is replaced by that list's items (so a matrix axis or an optional flag group can be
    spliced into arms' args)
    parsers:
      - name: ppl                 json_prefix: "[PPL-JSON]"   fields: {ppl: ppl, nll: nll}
      - name: decode              regex: 'prefill (?P<prefill_ms>[\\d.]+) ms, (?P<decode_tok_s>[\\d.]+) tok/s'
        take: last | first | mean | sum | count | max | min     (several matching lines)
        optional: false            a required parser that matches nothing makes the arm ERROR
        arms: [only these arms]
    diffs: {degradation: [peak_acc, final_acc]}   per arm, a metric = first minus second (when both parsed)
    version_args: [--version]      recorded in provenance with the executable's sha256
    timeout_s: per arm (default: what is left of the row's max runtime)

    ab: {...}                      A/B statistics and the contamination verdict over the arms
                                   (pack.experiments.throughput.paperb): NVML watched around each
                                   repetition's arms, a summary with delta, CV and variance ratio

Metrics are `<arm>.<field>`, plus `<arm>.wall_s` and `<arm>.peak_rss_mb` for every arm.
Per arm the harness keeps stdout/stderr as artifacts and records the exit code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ..errors import ManifestError
from ..fsio import sha256_file
from ..results import RepResult, RunContext
from .argv import render_args

TAIL_LINES = 12
TAKES = ("last", "first", "mean", "sum", "count", "max", "min")


def resolve_program(params: dict) -> tuple[list[str], Path | None, str | None]:
    """(argv prefix, file to fingerprint, problem) — problem is a sentence when it cannot run."""
    if "script" in params:
        repo = Path(os.path.expandvars(str(params.get("repo") or os.environ.get("PACK_AUTHOR_REPO") or "."))).expanduser()
        script = (repo / params["script"]).resolve()
        if not script.is_file() and not repo.is_absolute():
            # A relative repo (e.g. "." for the pack's own stand-in scripts) also resolves against the
            # project root, so `pack run` works from any directory.
            from ..paths import project_root

            alt = (project_root() / repo / params["script"]).resolve()
            script = alt if alt.is_file() else script
        if not script.is_file():
            return [], None, f"script '{params['script']}' not found in repository {repo} (set params.repo or PACK_AUTHOR_REPO)"
        interp = params.get("interpreter")
        if interp:
            exe = shutil.which(interp)
            if not exe:
                return [], script, f"interpreter '{interp}' not found on PATH"
            return [exe] + [str(a) for a in params.get("interpreter_args") or []] + [str(script)], script, None
        if not os.access(script, os.X_OK):
            return [], script, f"script {script} is not executable; set params.interpreter or chmod +x it"
        return [str(script)], script, None
    exe_name = params.get("executable")
    if not exe_name:
        raise ManifestError("a command row needs params.executable or params.script")
    raw, exe_name = str(exe_name), os.path.expandvars(str(exe_name))
    if "$" in exe_name:
        return [], None, f"executable '{raw}' names an environment variable that is not set; export it (see the row's description)"
    exe = shutil.which(exe_name) if os.sep not in exe_name else (exe_name if os.access(exe_name, os.X_OK) else None)
    if not exe:
        return [], None, f"executable '{exe_name}' not found (not on PATH or not executable)"
    return [exe], Path(exe), None



def _record_program(ctx: RunContext, argv: list[str], fp: Path | None, params: dict) -> None:
    if "command" in ctx.provenance:
        return
    info: dict = {"argv0": argv, "path": str(fp) if fp else None}
    if fp and fp.is_file():
        info["sha256"] = sha256_file(fp)
    vargs = params.get("version_args", ["--version"])
    if vargs:
        try:
            res = subprocess.run(argv + list(vargs), capture_output=True, text=True, timeout=30)
            info["version_text"] = (res.stdout + res.stderr).strip()[:2000]
        except (OSError, subprocess.TimeoutExpired) as e:
            info["version_text"] = f"unavailable: {e}"
    ctx.provenance["command"] = info


def run_process(argv: list[str], env: dict, cwd: Path | None, out_path: Path, err_path: Path, timeout_s: float) -> dict:
    """Run argv with output to files; return exit code, wall seconds, peak RSS (MB), timed_out."""
    t0 = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                start_new_session=True)  # own process group: a timeout kills its children too
        timed_out = False
        status, rusage = None, None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout_s:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"exit_code": proc.returncode, "wall_s": time.monotonic() - t0,
            "peak_rss_mb": rusage.ru_maxrss / 1024.0, "timed_out": timed_out}


def parse(text: str, parsers: list[dict], arm: str) -> tuple[dict, list[str]]:
    """(metrics, names of required parsers that matched nothing)."""
    metrics: dict = {}
    unmatched = []
    lines = text.splitlines()
    for p in parsers:
        if p.get("arms") and arm not in p["arms"]:
            continue
        found: dict[str, list] = {}
        if "json_prefix" in p:
            prefix = p["json_prefix"]
            for line in lines:
                i = line.find(prefix)
                if i < 0:
                    continue
                try:
                    obj = json.loads(line[i + len(prefix):].strip())
                except ValueError:
                    continue
                for metric, key in (p.get("fields") or {k: k for k in obj}).items():
                    if key in obj and isinstance(obj[key], (int, float)):
                        found.setdefault(metric, []).append(float(obj[key]))
        elif "regex" in p:
            rx = re.compile(p["regex"])
            for line in lines:
                m = rx.search(line)
                if m:
                    for metric, val in m.groupdict().items():
                        if val is not None:
                            found.setdefault(p.get("fields", {}).get(metric, metric), []).append(float(val))
        else:
            raise ManifestError(f"parser '{p.get('name', '?')}' needs 'regex' or 'json_prefix'")
        if not found:
            if not p.get("optional"):
                unmatched.append(p.get("name") or p.get("regex") or p.get("json_prefix"))
            continue
        take = p.get("take", "last")
        if take not in TAKES:
            raise ManifestError(f"parser '{p.get('name', '?')}': take '{take}' is not one of {', '.join(TAKES)}")
        for metric, vals in found.items():
            metrics[metric] = {"last": vals[-1], "first": vals[0], "mean": sum(vals) / len(vals),
                               "sum": sum(vals), "count": float(len(vals)), "max": max(vals), "min": min(vals)}[take]
    return metrics, unmatched


def tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    argv0, fp, problem = resolve_program(params)
    arms = params.get("arms") or {"run": {}}
    parsers = params.get("parsers") or []
    result = RepResult()
    if problem:
        for arm in arms:
            result.errors[arm] = problem
        return result
    _record_program(ctx, argv0, fp, params)
    cwd = Path(os.path.expandvars(params["cwd"])) if params.get("cwd") else None
    watch = None
    if params.get("ab"):
        from .throughput import paperb

        watch = paperb.watch(params, ctx).__enter__()
    try:
        _run_arms(params, ctx, argv0, arms, parsers, cwd, result)
    finally:
        if watch is not None:
            watch.__exit__(None, None, None)
            paperb.note_contamination(result, watch.reasons(), ctx)
            result.info["gpu_watch"] = watch.record()
    return result


def summarize(params: dict, ctx: RunContext, reps: list[RepResult]) -> RepResult:
    """A/B statistics over the arms when the row declares params.ab; nothing otherwise."""
    if not params.get("ab"):
        return RepResult()
    from .throughput import paperb

    return paperb.summarize(params, ctx, reps)


def _run_arms(params, ctx, argv0, arms, parsers, cwd, result) -> None:
    for arm, spec in arms.items():
        spec = spec or {}
        if spec.get("once") and ctx.rep_index > 0:
            continue
        argv = argv0 + render_args(params.get("args", []), params) + render_args(spec.get("args", []), params)
        env = dict(os.environ)
        env.update({k: str(v) for k, v in (params.get("env") or {}).items()})
        env.update({k: str(v) for k, v in (spec.get("env") or {}).items()})
        out_p, err_p = ctx.rep_dir / f"{arm}.stdout.txt", ctx.rep_dir / f"{arm}.stderr.txt"
        timeout = min(float(params.get("timeout_s", 1e9)), max(ctx.seconds_left(), 1.0))
        ctx.log(f"arm {arm}: {' '.join(argv[-8:])}")
        try:
            proc = run_process(argv, env, cwd, out_p, err_p, timeout)
        except OSError as e:
            result.errors[arm] = f"could not start {argv[0]}: {e}"
            continue
        result.info[arm] = {"argv": argv, "exit_code": proc["exit_code"], "timed_out": proc["timed_out"]}
        result.metrics[f"{arm}.wall_s"] = round(proc["wall_s"], 6)
        result.metrics[f"{arm}.peak_rss_mb"] = round(proc["peak_rss_mb"], 2)
        last = tail(out_p) + ("\n" + tail(err_p) if err_p.stat().st_size else "")
        if proc["timed_out"]:
            result.errors[arm] = f"timed out after {timeout:.0f} s; last lines:\n{last}"
            continue
        if proc["exit_code"] != 0:
            result.errors[arm] = f"exited with code {proc['exit_code']}; last lines:\n{last}"
            continue
        text = out_p.read_text(errors="replace") + "\n" + err_p.read_text(errors="replace")
        metrics, unmatched = parse(text, parsers, arm)
        if unmatched:
            result.errors[arm] = f"no output matched parser(s) {', '.join(map(str, unmatched))}; last lines:\n{last}"
        for name, (a, b) in (params.get("diffs") or {}).items():
            if a in metrics and b in metrics:
                metrics[name] = metrics[a] - metrics[b]
        for k, v in metrics.items():
            result.metrics[f"{arm}.{k}"] = v
