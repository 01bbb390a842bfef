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
    spliced into arms' args); {rep_dir} (in args, cwd and json_file) is the repetition's folder, so a
    stand-in run in it writes nothing outside the run
    parsers:
      - name: ppl                 json_prefix: "[PPL-JSON]"   fields: {ppl: ppl, nll: nll}
      - name: decode              regex: 'prefill (?P<prefill_ms>[\\d.]+) ms, (?P<decode_tok_s>[\\d.]+) tok/s'
      - name: results             json_file: "results/05a/perplexity_results.json"
                                  fields: {2x.ppl: e2e_2x.ppl, 2x.strict: "tag=e2e_2x.strict_match"}
        (a JSON file the arm wrote, read after it exits: the path is rendered like an argument and
        taken relative to the arm's cwd; each field is a dotted path into the file (rendered too),
        where a segment `key=value` picks the last list item whose `key` equals value (an upserted
        results list), a number indexes a list and `*` takes every item, reduced by `take`. A file
        older than the arm's start was not written by it: the parser does not match, so stale
        results never pass.)
        take: last | first | mean | sum | count | max | min     (several matching lines)
        optional: false            a required parser that matches nothing makes the arm ERROR
        arms: [only these arms]
    diffs: {degradation: [peak_acc, final_acc]}   per arm, a metric = first minus second (when both parsed)
    version_args: [--version]      recorded in provenance with the executable's sha256
    timeout_s: per arm (default: what is left of the row's max runtime)

    ab: {...}                      A/B statistics and the contamination verdict over the arms
                                   (pack.experiments.arms, throughput/ab.py): NVML watched around each
                                   repetition's arms, a summary with delta (and its interval), CV,
                                   variance ratio and Brown-Forsythe p; ab.order: alternate
    outputs, roofline, gpu_watch   as in throughput/outputs.py and contamination.py
    any other key is a template value: it must be used as {key} by an argument (else it is a typo)

`Params` below is the one place that knows these keys (`pack validate` checks rows with it).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import ConfigDict, model_validator

from ..fsio import sha256_file
from ..results import RepResult, RunContext
from ..strict import Number, Strict, close_matches
from . import arms as arm_loop
from .argv import TEMPLATE, render_args
from .params import parse as parse_params
from .throughput.params import ArmParams

TAIL_LINES = 12
TAKES = ("last", "first", "mean", "sum", "count", "max", "min")
Arg = str | int | float


class Parser(Strict):
    name: str | None = None
    regex: str | None = None
    json_prefix: str | None = None
    json_file: str | None = None
    fields: dict[str, str] | None = None
    take: Literal[TAKES] = "last"
    optional: bool = False
    arms: list[str] | None = None

    @model_validator(mode="after")
    def _one_source(self):
        sources = [s for s in (self.regex, self.json_prefix, self.json_file) if s is not None]
        if len(sources) != 1:
            raise ValueError(
                f"parser '{self.name or '?'}' needs exactly one of 'regex', 'json_prefix' or 'json_file'"
            )
        if self.json_file is not None and not self.fields:
            raise ValueError(
                f"parser '{self.name or '?'}': a json_file parser needs 'fields' {{metric: dotted.path}}"
            )
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as e:
                raise ValueError(f"parser '{self.name or '?'}': regex does not compile: {e}") from None
        return self

    @property
    def label(self) -> str:
        return self.name or self.regex or self.json_prefix or self.json_file


class CommandArm(Strict):
    args: list[Arg] = []
    env: dict[str, Arg] = {}
    once: bool = False


class Params(ArmParams):
    """A `command` row's params (see the module doc). Keys not listed are template values."""

    model_config = ConfigDict(extra="allow", frozen=True)

    executable: str | None = None
    script: str | None = None
    repo: str | None = None
    interpreter: str | None = None
    interpreter_args: list[Arg] = []
    cwd: str | None = None
    args: list[Arg] = []
    env: dict[str, Arg] = {}
    arms: dict[str, CommandArm | None] | None = None
    parsers: list[Parser] = []
    diffs: dict[str, tuple[str, str]] = {}
    version_args: list[Arg] = ["--version"]
    timeout_s: Number | None = None

    @model_validator(mode="after")
    def _program_and_templates(self):
        if not self.executable and not self.script:
            raise ValueError("a command row needs params.executable or params.script")
        # Other keys are template values; one that no argument uses and that looks like a command
        # param is a typo ("parser" for "parsers"). Unused values are allowed otherwise: rows share
        # their values through YAML merges (<<: *engine) and use some of them.
        used = self.template_names()
        typos = {
            k: close_matches(k, type(self).model_fields, n=1)
            for k in sorted(set(self.model_extra or {}) - used)
        }
        typos = {k: v[0] for k, v in typos.items() if v}
        if typos:
            raise ValueError(
                "; ".join(
                    f"'{k}' is not a command param (did you mean '{v}'?) and no argument uses it as {{{k}}}"
                    for k, v in typos.items()
                )
            )
        return self

    def template_names(self) -> set[str]:
        """Names used as {name} by the arguments, through spliced lists too."""
        todo = [str(a) for a in self.args + [a for s in (self.arms or {}).values() if s for a in s.args]]
        for parser in self.parsers:  # a json_file parser's path and fields are templates too
            if parser.json_file is not None:
                todo += [parser.json_file, *(parser.fields or {}).values()]
        if isinstance(self.roofline, Strict) and self.roofline.model:
            todo.append(self.roofline.model)
        extra, seen = dict(self.model_extra or {}), set()
        while todo:
            for name in TEMPLATE.findall(todo.pop()):
                if name not in seen:
                    seen.add(name)
                    if isinstance(extra.get(name), list):
                        todo += [str(v) for v in extra[name]]
        return seen

    def arm_specs(self) -> dict[str, CommandArm]:
        return {name: spec or CommandArm() for name, spec in (self.arms or {"run": None}).items()}


@dataclass(frozen=True)
class Program:
    """How to start the row's program: the argv prefix, the file to fingerprint, or why it cannot run."""

    argv: list[str]
    fingerprint: Path | None = None
    problem: str | None = None


class Parsed(NamedTuple):
    metrics: dict
    unmatched: list[str]


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int
    wall_s: float
    peak_rss_mb: float
    timed_out: bool


def resolve_program(p: Params) -> Program:
    if p.script:
        repo = Path(os.path.expandvars(str(p.repo or os.environ.get("PACK_AUTHOR_REPO") or "."))).expanduser()
        script = (repo / p.script).resolve()
        if not script.is_file() and not repo.is_absolute():
            # A relative repo (e.g. "." for the pack's own stand-in scripts) also resolves against the
            # project root, so `pack run` works from any directory.
            from ..paths import project_root

            alt = (project_root() / repo / p.script).resolve()
            script = alt if alt.is_file() else script
        if not script.is_file():
            return Program(
                [],
                None,
                f"script '{p.script}' not found in repository {repo} (set params.repo or PACK_AUTHOR_REPO)",
            )
        if p.interpreter:
            interp = os.path.expandvars(p.interpreter)  # e.g. ${PACK_AUTHOR_REPO}/.venv/bin/python
            if "$" in interp:
                return Program(
                    [], script, f"interpreter '{p.interpreter}' names an environment variable that is not set"
                )
            if os.sep in interp:
                if not (os.path.isfile(interp) and os.access(interp, os.X_OK)):
                    return Program([], script, f"interpreter {interp} does not exist or is not executable")
                exe = interp
            else:
                exe = shutil.which(interp)
                if not exe:
                    return Program([], script, f"interpreter '{p.interpreter}' not found on PATH")
            return Program([exe] + [str(a) for a in p.interpreter_args] + [str(script)], script)
        if not os.access(script, os.X_OK):
            return Program(
                [], script, f"script {script} is not executable; set params.interpreter or chmod +x it"
            )
        return Program([str(script)], script)
    raw, exe_name = str(p.executable), os.path.expandvars(str(p.executable))
    if "$" in exe_name:
        return Program(
            [],
            None,
            f"executable '{raw}' names an environment variable that is not set; "
            "export it (see the row's description)",
        )
    if os.sep in exe_name:
        exe = exe_name if os.access(exe_name, os.X_OK) else None
    else:
        exe = shutil.which(exe_name)
    if not exe:
        return Program([], None, f"executable '{exe_name}' not found (not on PATH or not executable)")
    return Program([exe], Path(exe))


def _record_program(ctx: RunContext, prog: Program, p: Params) -> None:
    if "command" in ctx.provenance:
        return
    fp = prog.fingerprint
    info: dict = {"argv0": prog.argv, "path": str(fp) if fp else None}
    if fp and fp.is_file():
        info["sha256"] = sha256_file(fp)
    if p.version_args:
        try:
            res = subprocess.run(
                prog.argv + [str(a) for a in p.version_args], capture_output=True, text=True, timeout=30
            )
            info["version_text"] = (res.stdout + res.stderr).strip()[:2000]
        except (OSError, subprocess.TimeoutExpired) as e:
            info["version_text"] = f"unavailable: {e}"
    ctx.provenance["command"] = info


def run_process(
    argv: list[str], env: dict, cwd: Path | None, out_path: Path, err_path: Path, timeout_s: float
) -> ProcessResult:
    """Run argv with output to files; exit code, wall seconds, peak RSS (MB), whether it timed out."""
    t0 = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True
        )  # own process group: a timeout kills its children too
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
    return ProcessResult(proc.returncode, time.monotonic() - t0, rusage.ru_maxrss / 1024.0, timed_out)


def parse(text: str, parsers: list[Parser | dict], arm: str) -> Parsed:
    """Metrics the parsers read, and the names of required parsers that matched nothing."""
    metrics: dict = {}
    unmatched = []
    lines = text.splitlines()
    for p in parsers:
        p = p if isinstance(p, Parser) else parse_params(Parser, p, "command parser")
        if (p.arms and arm not in p.arms) or p.json_file is not None:
            continue
        found: dict[str, list] = {}
        if p.json_prefix is not None:
            for line in lines:
                i = line.find(p.json_prefix)
                if i < 0:
                    continue
                try:
                    obj = json.loads(line[i + len(p.json_prefix) :].strip())
                except ValueError:
                    continue
                for metric, key in (p.fields or {k: k for k in obj}).items():
                    if key in obj and isinstance(obj[key], (int, float)):
                        found.setdefault(metric, []).append(float(obj[key]))
        else:
            rx = re.compile(p.regex)
            for line in lines:
                m = rx.search(line)
                if m:
                    for metric, val in m.groupdict().items():
                        if val is not None:
                            found.setdefault((p.fields or {}).get(metric, metric), []).append(float(val))
        if not found:
            if not p.optional:
                unmatched.append(p.label)
            continue
        metrics.update({metric: _take(vals, p.take) for metric, vals in found.items()})
    return Parsed(metrics, unmatched)


def _take(vals: list[float], take: str) -> float:
    return {
        "last": lambda: vals[-1],
        "first": lambda: vals[0],
        "mean": lambda: sum(vals) / len(vals),
        "sum": lambda: sum(vals),
        "count": lambda: float(len(vals)),
        "max": lambda: max(vals),
        "min": lambda: min(vals),
    }[take]()


def json_path(obj, path: str) -> list:
    """The values at a dotted path: `a.b` keys, `3` a list index, `tag=x` the last list item whose
    'tag' is 'x' (an upserted results list: a rerun's entry replaces the earlier one), `*` every item."""
    nodes = [obj]
    for seg in path.split("."):
        nxt = []
        for node in nodes:
            if seg == "*":
                nxt += (
                    list(node.values())
                    if isinstance(node, dict)
                    else list(node)
                    if isinstance(node, list)
                    else []
                )
            elif isinstance(node, dict):
                if seg in node:
                    nxt.append(node[seg])
            elif isinstance(node, list):
                if "=" in seg:
                    key, want = seg.split("=", 1)
                    hits = [x for x in node if isinstance(x, dict) and str(x.get(key)) == want]
                    nxt += hits[-1:]
                elif seg.lstrip("-").isdigit() and -len(node) <= int(seg) < len(node):
                    nxt.append(node[int(seg)])
        nodes = nxt
    out = []
    for v in nodes:
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                out.append(float(x))
    return out


def parse_files(parsers: list[Parser | dict], arm: str, values: dict, cwd: Path, since: float) -> Parsed:
    """Metrics the json_file parsers read from files the arm wrote (modified at or after `since`),
    and, for each required parser that got nothing, its label and why."""
    metrics: dict = {}
    unmatched = []
    for p in parsers:
        p = p if isinstance(p, Parser) else parse_params(Parser, p, "command parser")
        if p.json_file is None or (p.arms and arm not in p.arms):
            continue
        path = Path(os.path.expandvars(render_args([p.json_file], values)[0]))
        path = path if path.is_absolute() else cwd / path
        problem, obj = None, None
        try:
            if path.stat().st_mtime < since - 1.0:  # 1 s: coarse filesystem timestamps
                problem = f"{path} is older than the arm's start (not written by this run)"
            else:
                obj = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problem = f"{path} was not written"
        except (OSError, ValueError) as e:
            problem = f"{path} is not readable JSON ({e})"
        fields = {m: render_args([q], values)[0] for m, q in (p.fields or {}).items()}
        found = {} if obj is None else {m: json_path(obj, q) for m, q in fields.items()}
        found = {m: v for m, v in found.items() if v}
        if not found:
            if not p.optional:
                why = problem or f"{path} has none of {', '.join(sorted(fields.values()))}"
                unmatched.append(f"{p.label} ({why})")
            continue
        metrics.update({metric: _take(vals, p.take) for metric, vals in found.items()})
    return Parsed(metrics, unmatched)


def tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    p = parse_params(Params, params, "command")
    arms = p.arm_specs()
    prog = resolve_program(p)
    if prog.problem:  # nothing can run: every arm is an error (the runner exits non-zero)
        return RepResult(errors={arm: prog.problem for arm in arms})
    _record_program(ctx, prog, p)
    watches = {}
    if p.ab is not None:
        from .throughput.contamination import engine_gpu_processes, gpu_watch_for

        watches["gpu_watch"] = gpu_watch_for(params, ctx, engine_gpu_processes)
    order = p.ab.order if p.ab is not None else "interleaved"
    return arm_loop.run_rep(
        {a: s.model_dump() for a, s in arms.items()},
        ctx,
        lambda arm, _spec: _run_arm(p, params, ctx, prog, arm, arms[arm]),
        order=order,
        watches=watches,
    )


def summarize(params: dict, ctx: RunContext, reps: list[RepResult]) -> RepResult:
    """A/B statistics over the arms when the row declares params.ab; nothing otherwise."""
    p = parse_params(Params, params, "command")
    if p.ab is None:
        return RepResult()
    return arm_loop.summarize(
        params, ctx, reps, arms=list(p.arm_specs()), fields=("decode_tok_s", "prefill_ms", "wall_s")
    )


def _run_arm(
    p: Params, params: dict, ctx: RunContext, prog: Program, arm: str, spec: CommandArm
) -> arm_loop.ArmOutcome:
    values = {**params, "rep_dir": str(ctx.rep_dir)}
    argv = prog.argv + render_args(p.args, values) + render_args(spec.args, values)
    env = dict(os.environ)
    env.update({k: str(v) for k, v in p.env.items()})
    env.update({k: str(v) for k, v in spec.env.items()})
    out_p, err_p = ctx.rep_dir / f"{arm}.stdout.txt", ctx.rep_dir / f"{arm}.stderr.txt"
    timeout = min(float(p.timeout_s or 1e9), max(ctx.seconds_left(), 1.0))
    cwd = Path(os.path.expandvars(render_args([p.cwd], values)[0])) if p.cwd else None
    ctx.log(f"arm {arm}: {' '.join(argv[-8:])}")
    started = time.time()
    try:
        proc = run_process(argv, env, cwd, out_p, err_p, timeout)
    except OSError as e:
        return arm_loop.ArmOutcome(error=f"could not start {argv[0]}: {e}")
    info = {"argv": argv, "exit_code": proc.exit_code, "timed_out": proc.timed_out}
    metrics = {"wall_s": round(proc.wall_s, 6), "peak_rss_mb": round(proc.peak_rss_mb, 2)}
    last = tail(out_p) + ("\n" + tail(err_p) if err_p.stat().st_size else "")
    if proc.timed_out:
        return arm_loop.ArmOutcome(metrics, info, f"timed out after {timeout:.0f} s; last lines:\n{last}")
    if proc.exit_code != 0:
        return arm_loop.ArmOutcome(metrics, info, f"exited with code {proc.exit_code}; last lines:\n{last}")
    text = out_p.read_text(errors="replace") + "\n" + err_p.read_text(errors="replace")
    parsed = parse(text, p.parsers, arm)
    files = parse_files(p.parsers, arm, values, cwd or Path.cwd(), started)
    error = None
    unmatched = parsed.unmatched + files.unmatched
    if unmatched:
        error = f"no output matched parser(s) {', '.join(map(str, unmatched))}; last lines:\n{last}"
    found = parsed.metrics | files.metrics
    for name, (a, b) in p.diffs.items():
        if a in found and b in found:
            found[name] = found[a] - found[b]
    return arm_loop.ArmOutcome(metrics | found, info, error)
