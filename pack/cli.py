"""The `pack` command. Thin: parses arguments, calls the modules, prints results to stdout and
logs to stderr. Imports of anything heavier than click happen inside the commands, so
`pack --help`, `list`, `show`, `validate`, `plan` and `verify` never load torch or a backend.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from pathlib import Path

import click

from . import console, fsio
from .errors import EXIT_CRASH, EXIT_USAGE, OS_FAULTS, PackError


def _out(text: str = "") -> None:
    click.echo(text)


def _err(text: str) -> None:
    click.echo(text, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="pack-repro", prog_name="pack")
def cli():
    """Reproduce the rows of GPU ML papers' tables and verify them against the papers' tolerances.

    \b
    Typical use:
      pack list                       rows of every paper
      pack run wire-compression       run a row (smoke scale by default) into ./runs
      pack verify                     PASS / FAIL / CONTAMINATED / NOT-APPLICABLE per metric
      pack report --out reports/      Markdown, HTML (with plots), JSON and JUnit files

    Exit codes: 0 all pass, 1 a row failed, 2 usage or manifest error, 3 crash.
    """


# ---------------------------------------------------------------- catalogue views
@cli.command("list")
@click.argument("paper", metavar="[PAPER|PAPER:ROW|ROW]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def list_cmd(paper, as_json):
    """List rows (all papers, one PAPER, or one row)."""
    from .errors import ManifestError
    from .index import rows_index, skipping

    rows, broken = rows_index()  # from the index: listing never imports pydantic (bench/startup.py)
    if paper:
        mine = [f for f in broken if Path(f).stem == paper.partition(":")[0]]
        if mine:  # the asked-for paper's own manifest is broken: that is the answer
            raise ManifestError(broken[mine[0]])
        papers = sorted({r["paper"] for r in rows})
        if ":" in paper or (paper not in papers and any(r["row"] == paper for r in rows)):
            from .manifest import find_row

            m, row = find_row(paper)  # an unknown row answers with close matches
            rows = [r for r in rows if (r["paper"], r["row"]) == (m.paper, row.id)]
        elif paper not in papers:
            from .strict import did_you_mean

            raise PackError(f"unknown paper '{paper}'; " + did_you_mean(paper, papers, n=1))
        else:
            rows = [r for r in rows if r["paper"] == paper]
    for f, problems in broken.items():  # other papers' broken manifests do not hide this listing
        _err(f"pack: warning: {skipping(f, problems)}")
    if as_json:
        _out(fsio.json_text(rows, indent=2))
        sys.exit(2 if broken and not paper else 0)
    table = []
    for r in rows:
        full = r["scales"]["full"]
        full_on = full["hardware"] + (f" [{full['image']}]" if full.get("image") else "")
        table.append(
            [
                r["paper"],
                r["row"],
                r["experiment"],
                r["scales"].get("smoke", {}).get("hardware"),
                full_on,
                r["cell"],
            ]
        )
    _out(console.table(["PAPER", "ROW", "EXPERIMENT", "SMOKE ON", "FULL ON", "CELL"], table))
    if broken and not paper:
        sys.exit(2)  # every row of the healthy manifests is listed; the broken ones are the user's to fix


@cli.command()
@click.argument("row")
@click.option("--json", "as_json", is_flag=True, help="Print the row as JSON.")
def show(row, as_json):
    """Show one ROW: params per scale, target, metrics and their tolerances, expectations."""
    from . import expected, yamlio
    from .manifest import find_row
    from .tolerance import describe_rule

    m, r = find_row(row)
    doc = {
        "paper": m.paper,
        "row": r.id,
        "cell": r.cell,
        "experiment": r.experiment,
        "description": r.description,
    }
    for s in ("smoke", "full"):
        rr = r.at(s)
        doc[s] = {
            "target": rr.target.model_dump(exclude_none=True),
            "reps": rr.reps,
            "params": rr.params,
            "max_runtime_s": rr.max_runtime_s,
            "runtime_estimate_s": rr.runtime_estimate_s,
        }
    doc["metrics"] = {
        k: describe_rule(v.tolerance) + (f" [{v.unit}]" if v.unit else "") for k, v in r.metrics.items()
    }
    ef = expected.for_row(m.paper, r.id)
    if ef:
        doc["expected"] = [
            {
                "metric": e.metric,
                "value": e.value,
                "scope": e.scope.model_dump(exclude_none=True),
                "source": e.source.model_dump(exclude_none=True),
            }
            for e in ef.expectations
        ]
    if as_json:
        _out(fsio.json_text(doc))
        return
    _out(yamlio.dump(doc).rstrip())


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print {ok, manifests, rows, expected_files, problems} as JSON."
)
def validate(files, as_json):
    """Check manifests, catalogues and expected/ files; report every problem at once."""
    from . import catalog, expected, manifest, paths
    from .errors import ManifestError

    problems: list[str] = []
    broken: set[str] = set()
    for loader in (catalog.hardware, catalog.images):
        try:
            loader()
        except ManifestError as e:
            problems += e.problems
    targets = list(files) or manifest.manifest_files() + expected.expected_files()
    loaded: dict = {}
    for f in targets:
        if (
            f.parent.name != "manifests"
            and f.suffix in (".yaml", ".yml")
            and f.parent.parent.name == "expected"
        ):
            continue
        if f.name in manifest.NON_MANIFESTS:
            continue
        try:
            m = manifest.load_manifest(f)
            loaded[m.paper] = m
        except ManifestError as e:
            problems += e.problems
            broken.add(f.stem)
    exp_targets = [f for f in targets if f.parent.parent.name == "expected"]
    if exp_targets:
        for m in manifest.manifest_files():
            if m.stem not in loaded:
                try:
                    loaded[m.stem] = manifest.load_manifest(m)
                except ManifestError:
                    broken.add(m.stem)
        unchecked: dict[str, int] = {}
        for f in exp_targets:
            if f.parent.name in broken:  # judged against a manifest that does not load: say it once
                unchecked[f.parent.name] = unchecked.get(f.parent.name, 0) + 1
                continue
            problems += expected.check_file(f, loaded)
        problems += [
            f"{paths.expected_dir() / paper}: {n} expected file(s) not checked until "
            f"manifests/{paper}.yaml loads"
            for paper, n in unchecked.items()
        ]
    problems = list(dict.fromkeys(problems))
    n_rows = sum(len(m.rows) for m in loaded.values())
    if as_json:  # the problems on stdout as data; the exit status says the same as without --json
        doc = {"ok": not problems, "manifests": sorted(loaded), "rows": n_rows}
        _out(fsio.json_text(doc | {"expected_files": len(exp_targets), "problems": problems}, indent=2))
        sys.exit(EXIT_USAGE if problems else 0)
    if problems:
        raise ManifestError(problems)
    _out(f"ok: {len(loaded)} manifest(s), {n_rows} row(s), {len(exp_targets)} expected file(s)")


def is_row_ref(ref: str) -> bool:
    """REF names one row (PAPER:ROW, or a row id that is no paper's name) rather than a paper."""
    from .manifest import usable_manifests

    papers = usable_manifests()
    if ":" in ref:
        return True
    return ref not in {m.paper for m in papers} and any(r.id == ref for m in papers for r in m.rows)


@cli.command()
@click.argument("paper", metavar="PAPER|PAPER:ROW|ROW")
@click.option("--hw", "hw", required=True, help="Hardware class from manifests/hardware.yaml, or 'local'.")
@click.option("--scale", type=click.Choice(["smoke", "full"]), default="full", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(paper, hw, scale, as_json):
    """Per-row time and cost of running PAPER (or one row) on HW, and which rows that hardware cannot take."""
    from . import planning
    from .manifest import find_row

    if is_row_ref(paper):
        find_row(paper)  # an unknown row answers with close matches
        p = planning.plan_rows([paper], hw, scale)
    else:
        p = planning.plan(paper, hw, scale)
    if as_json:
        _out(fsio.json_text(p, indent=2))
    else:
        _out(planning.render(p, fancy=console.is_terminal()))
    if p["refused"] and not p["rows_ok"]:
        sys.exit(2)


# ---------------------------------------------------------------- running
@cli.command()
@click.argument("rows", nargs=-1, required=True)
@click.option("--scale", type=click.Choice(["smoke", "full"]), default="smoke", show_default=True)
@click.option("--reps", type=click.IntRange(min=1), help="Override the row's repetitions.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the newest unfinished run with the same params "
    "(a complete, up-to-date one is left as it is).",
)
@click.option(
    "--force", is_flag=True, help="With --resume: start a new run even when the last one is up to date."
)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), help="Runs directory (default ./runs or $PACK_RUNS)."
)
@click.option("--hw", "hw", help="Catalogue name of this machine (default $PACK_HW, else cpu/local-gpu).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON list of {row, status, run_dir, up_to_date} at the end.",
)
def run(rows, scale, reps, resume, force, out, hw, seed, as_json):
    """Run ROWS (row ids, or a paper name for all its rows that this machine can run)."""
    import dataclasses

    from . import paths
    from .errors import NotRunnableHere
    from .manifest import find_row, usable_manifests
    from .run import (
        RowOutcome,
        check_runnable,
        execute,
        local_hardware_name,
        one_line,
        outcome_of,
        run_summary,
    )
    from .rundir import RunDir

    runs_root = out.resolve() if out else paths.runs_dir()
    hw = hw or local_hardware_name()
    from .catalog import resolve_hardware

    resolve_hardware(hw, [])  # an unknown --hw / PACK_HW is refused before any row starts
    papers = {m.paper: m for m in usable_manifests()}
    todo, explicit = [], True
    for ref in rows:
        if ref in papers:
            explicit = False
            todo += [(papers[ref], r) for r in papers[ref].rows]
        else:
            todo.append(find_row(ref))
    outcomes, done_rows = [], []

    def said(o: RowOutcome, run_dir: Path, up_to_date: bool = False) -> None:
        outcomes.append(o)
        done_rows.append({"row": o.ref, "status": o.state, "run_dir": str(run_dir), "up_to_date": up_to_date})
        if not as_json:
            _out(f"{o.ref}\t{o.state}\t{run_dir}")

    for m, r in todo:
        rr = r.at(scale)
        if reps:
            rr = dataclasses.replace(rr, reps=reps)
        try:
            check_runnable(rr, hw)
        except NotRunnableHere as e:
            if explicit:
                raise
            _err(f"skip {r.id}: {e}")
            outcomes.append(RowOutcome(f"{m.paper}:{r.id}", "skipped", str(e)))
            continue
        ref = f"{m.paper}:{r.id}"
        if resume and not force:
            from .status import up_to_date

            done = up_to_date(runs_root / m.paper / r.id, rr, seed)
            if done is not None:
                _err(
                    f"{ref}: up to date ({done.name} is complete, intact, same params, pack and image); "
                    "nothing to do — add --force for a new run"
                )
                said(RowOutcome(ref, "complete", "", done), done, up_to_date=True)
                continue
        try:
            run_dir = execute(m, rr, runs_root=runs_root, resume=resume and not force, hw_name=hw, seed=seed)
        except PackError as e:  # one row's bad input: say it now, run the other rows, exit 2 at the end
            if len(todo) == 1:
                raise
            _err(f"pack: error: {ref}: {e}")
            outcomes.append(RowOutcome(ref, "error", one_line(str(e)), input_error=True))
            continue
        said(outcome_of(ref, RunDir(run_dir)), run_dir)
    if as_json:
        _out(fsio.json_text(done_rows, indent=2))
    summary = run_summary(outcomes)
    for line in summary.lines:  # stdout stays one JSON document with --json
        (_err if as_json else _out)(line)
    sys.exit(summary.exit_code)


# ---------------------------------------------------------------- judging
def _collect(target: str | None, scale: str | None = None, run_id: str | None = None) -> list[Path]:
    """The runs a run folder, runs tree, paper name, paper:row or row id names (default: ./runs), chosen by
    pack/selection.py (per row and scale, the newest finished run); the runs it passed over go to stderr."""
    from . import paths, selection

    sel = selection.runs_for(target, runs_root=paths.runs_dir(), scale=scale, run_id=run_id)
    for note in sel.notes:
        _err(f"note: {note}")
    return [rd.path for rd in sel.runs]


def _selection_options(f):
    """--scale / --run-id: which runs verify, report and bundle take (pack/selection.py decides)."""
    f = click.option("--run-id", help="Judge exactly this run (a run folder's name).")(f)
    return click.option(
        "--scale",
        type=click.Choice(["smoke", "full"]),
        help="Only runs of this scale (default: the newest finished run per row and scale).",
    )(f)


def _bundle_options(f, review: bool = True):
    """Caps on what an untrusted bundle may make this machine hold; the key it must be signed with and
    the expectations to judge it against (review=True)."""
    f = click.option(
        "--max-members", help="Most members a bundle may have (default 100000; $PACK_BUNDLE_MAX_MEMBERS)."
    )(f)
    f = click.option(
        "--max-member-bytes", help="Largest file a bundle may hold, e.g. 2G ($PACK_BUNDLE_MAX_MEMBER_BYTES)."
    )(f)
    f = click.option(
        "--max-bundle-bytes", help="Most bytes a bundle may extract to, e.g. 8G ($PACK_BUNDLE_MAX_BYTES)."
    )(f)
    if review:
        f = click.option(
            "--trust",
            type=click.Path(path_type=Path, exists=True, dir_okay=False),
            help="SSH public key (.pub) a BUNDLE must be signed with; others are refused.",
        )(f)
        f = click.option(
            "--expected",
            "expected",
            type=click.Path(path_type=Path, exists=True, file_okay=False),
            help="Judge a BUNDLE against this checkout's manifests/ and expected/, not its own.",
        )(f)
    return f


def _check_review(targets, trust, expected) -> None:
    for flag, given in (("--trust", trust), ("--expected", expected)):
        if given and not any(t and Path(t).is_file() for t in targets):
            raise PackError(f"{flag} applies to bundles; give a BUNDLE (a .tar.gz made by 'pack bundle')")


def _verdicts(targets, limits=None, trust=None, expected=None, scale=None, run_id=None):
    """Verdicts for TARGETS and what each was judged against; a bundle's damaged runs FAIL naming every
    file."""
    from .reviewer import Judged, judge_bundle, judge_dirs

    out = Judged()
    for target in targets or [None]:
        if target and Path(target).is_file():
            got = judge_bundle(Path(target), limits, trust, expected)
            for b in got.basis:
                if b.get("signed_by"):
                    _err(f"{target}: signature verified: {b['signed_by']}")
        else:
            got = judge_dirs(target or str(Path("runs")), _collect(target, scale, run_id))
        out.rows += got.rows
        out.basis += got.basis
    return out


def _limits(max_bundle_bytes, max_member_bytes, max_members):
    from .untar import Limits

    return Limits.from_env(
        max_bytes=max_bundle_bytes, max_member_bytes=max_member_bytes, max_members=max_members
    )


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print verdicts as JSON.")
@click.option("--brief", is_flag=True, help="One line per row, no per-metric lines.")
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    help="Also write report.md/.html/.json and junit.xml here.",
)
@_bundle_options
@_selection_options
def verify(
    targets,
    as_json,
    brief,
    report_dir,
    max_bundle_bytes,
    max_member_bytes,
    max_members,
    trust,
    expected,
    scale,
    run_id,
):
    """Judge runs against expected/: RUN_DIRs, runs trees, BUNDLE tarballs, PAPER names, PAPER:ROW or ROW ids
    (default: ./runs; per row and scale the newest finished run)."""
    from . import report
    from .reviewer import describe, verdict_meta
    from .verify import exit_code

    _check_review(targets, trust, expected)
    judged = _verdicts(
        targets, _limits(max_bundle_bytes, max_member_bytes, max_members), trust, expected, scale, run_id
    )
    rows, meta = judged.rows, verdict_meta(judged.basis)
    if as_json:
        _out(report.to_json(rows, meta))
    else:
        _out(report.table(rows, details=not brief))
        _out(console.prose(describe(judged.basis)))
    if report_dir:
        _write_reports(rows, report_dir, meta)
    sys.exit(exit_code(rows))


def _write_reports(rows, out_dir: Path, meta: dict | None = None) -> list[Path]:
    from . import fsio, report

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "report.md": report.markdown(rows),
        "report.html": report.html_report(rows),
        "report.json": report.to_json(rows, meta),
        "junit.xml": report.junit(rows),
    }
    for name, text in files.items():
        fsio.write_text_atomic(out_dir / name, text)
        _err(f"wrote {out_dir / name}")
    return [out_dir / name for name in files]


@cli.command("report")
@click.argument("targets", nargs=-1)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("reports"), show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print {files, summary, headline} as JSON.")
@_bundle_options
@_selection_options
def report_cmd(
    targets, out_dir, as_json, max_bundle_bytes, max_member_bytes, max_members, trust, expected, scale, run_id
):
    """Write report.md, report.html (with plots), report.json and junit.xml for TARGETS' runs."""
    from . import report
    from .reviewer import verdict_meta
    from .verify import exit_code

    _check_review(targets, trust, expected)
    judged = _verdicts(
        targets, _limits(max_bundle_bytes, max_member_bytes, max_members), trust, expected, scale, run_id
    )
    rows = judged.rows
    files = _write_reports(rows, out_dir, verdict_meta(judged.basis))
    if as_json:
        doc = {"files": [str(f) for f in files], "summary": report.summary_counts(rows)}
        _out(fsio.json_text(doc | {"headline": report.headline(rows)}, indent=2))
    else:
        _out(console.prose(report.headline(rows)))  # what the report is evidence of, by basis
        _out(str(out_dir / "report.html"))
    sys.exit(exit_code(rows))


@cli.command("bundle")
@click.argument("targets", nargs=-1)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), default=Path("bundle.tar.gz"), show_default=True
)
@click.option(
    "--sign",
    "sign_key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Sign the bundle's checksums with this SSH private key (ssh-keygen -t ed25519).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was bundled as JSON.")
@_selection_options
def bundle_cmd(targets, output, sign_key, as_json, scale, run_id):
    """Pack the newest finished run of each row and scale (of TARGETS: papers, rows, run dirs; default
    all)."""
    from . import bundle

    dirs = []
    for t in targets or [None]:
        dirs += _collect(t, scale, run_id)
    if not dirs:
        raise PackError("no runs to bundle; run rows first with 'pack run'")
    bundle.make(dirs, output, sign_key=sign_key)
    _err(f"bundled {len(dirs)} run(s)" + (f", signed with {sign_key}" if sign_key else ""))
    if as_json:
        _out(
            fsio.json_text(
                {
                    "bundle": str(output),
                    "sha256": fsio.sha256_file(output),
                    "signed": sign_key is not None,
                    "runs": [str(d) for d in dirs],
                },
                indent=2,
            )
        )
        return
    _out(str(output))


def runs_of_row(target: str) -> str:
    """A PAPER:ROW or row id names that row's runs folder (runs/PAPER/ROW); anything else is as given."""
    if Path(target).exists() or not is_row_ref(target):
        return target
    from . import paths
    from .manifest import find_row

    m, r = find_row(target)
    return str(paths.runs_dir() / m.paper / r.id)


@cli.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@functools.partial(_bundle_options, review=False)
def diff_cmd(a, b, as_json, max_bundle_bytes, max_member_bytes, max_members):
    """Compare A with B (run folders, runs trees, bundles, paper names, PAPER:ROW or row ids): per metric
    A, B, delta and whether B is within the metric's tolerance of A, with the environment differences.

    Exit 0 when every compared metric is within tolerance, 1 when one is not."""
    from contextlib import ExitStack

    from . import diff

    limits = _limits(max_bundle_bytes, max_member_bytes, max_members)
    with ExitStack() as stack:
        doc = diff.compare(*(diff.open_side(runs_of_row(t), t, stack, limits) for t in (a, b)))
    if not doc["rows"]:
        raise PackError(
            f"{a} and {b} have no intact row in common to compare (A: {', '.join(doc['only_in_a']) or '-'}; "
            f"B: {', '.join(doc['only_in_b']) or '-'}" + "".join(f"; {x}" for x in doc["skipped"]) + ")"
        )
    _out(fsio.json_text(doc) if as_json else diff.render(doc))
    sys.exit(1 if diff.beyond(doc) else 0)


@cli.command("status")
@click.argument("paper", metavar="[PAPER|PAPER:ROW|ROW]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_cmd(paper, as_json):
    """Per row and scale: the last finished run, its verdict now, and whether it is stale or missing."""
    from . import status

    if paper and is_row_ref(paper):  # a bare row id is that row, as everywhere else
        from .manifest import find_row

        m, r = find_row(paper)
        paper = f"{m.paper}:{r.id}"
    rows = status.status(paper)
    _out(status.to_json(rows) if as_json else status.render(rows))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--metric", "metrics", multiple=True, help="Bless only these metrics (default: all measured).")
@click.option("--note", default="", help="Why this run is the reference.")
def bless(run_dir, metrics, note):
    """Record RUN_DIR's measured values as the expectation for its row (the only writer of expected/)."""
    import json

    from . import expected
    from .errors import IntegrityError
    from .manifest import find_row
    from .rundir import RunDir

    problems = RunDir(run_dir).integrity()  # checksums and run.json against its repetitions
    if problems:
        raise IntegrityError(f"refusing to bless a damaged run: {problems[0]}")
    run = json.loads((run_dir / "run.json").read_text())
    if run.get("status") != "complete":
        raise PackError(f"{run_dir}: run status is '{run.get('status')}'; only a complete run can be blessed")
    _, row = find_row(f"{run['paper']}:{run['row']}")
    path = expected.bless(run, list(metrics) or None, row, note)
    _out(str(path))


@cli.command()
@click.option(
    "--diff",
    "diff",
    nargs=2,
    type=click.Path(path_type=Path, exists=True),
    help="Compare two fingerprints (env.json or run dirs).",
)
@click.option(
    "--all", "include_volatile", is_flag=True, help="With --diff, include timestamps and GPU processes."
)
@click.option("--no-torch", is_flag=True, help="Skip the torch import (no CUDA runtime/cuDNN facts).")
@click.option("--json", "as_json", is_flag=True, help="With --diff, print the differences as JSON.")
def env(diff, include_volatile, no_torch, as_json):
    """Print this machine's environment fingerprint as JSON, or what differs between two."""

    from . import provenance

    if diff:
        a, b = (provenance.load_fingerprint(p) for p in diff)
        rows = provenance.diff(a, b, include_volatile)
        if as_json:
            _out(fsio.json_text([{"field": k, "a": x, "b": y} for k, x, y in rows], indent=2))
            return
        if not rows:
            _out("identical")
            return
        _out(console.table(["FIELD", "A", "B"], [[k, x, y] for k, x, y in rows], wrap=["A", "B"]))
        return
    _out(fsio.json_text(provenance.fingerprint(with_torch=not no_torch), indent=2))


from .launch.cli import launch_group  # noqa: E402  (click only; the launchers load inside the commands)

cli.add_command(launch_group)
from .cli_forensics import analyze as _forensics_analyze  # noqa: E402  (imports click only)
from .cli_forensics import export as _forensics_export  # noqa: E402

cli.add_command(_forensics_analyze)
cli.add_command(_forensics_export)


# The machine, not the pack (a file where a folder is expected, a full or read-only disk, a folder this
# user may not write): one sentence naming the path, exit 2; what was written stays. ENOENT stays an
# internal error here: a missing user input is already a MissingInput sentence by then.
ENV_FAULTS = {code: fix for code, fix in OS_FAULTS.items() if code != errno.ENOENT}


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="pack", standalone_mode=False)
    except click.exceptions.Abort:
        _err("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except PackError as e:
        if os.environ.get("PACK_DEBUG") == "1":
            raise
        _err(f"pack: error: {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _err("pack: interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:
        if os.environ.get("PACK_DEBUG") == "1":
            raise
        if isinstance(e, OSError) and e.errno in ENV_FAULTS:
            where = f"{e.filename}: " if e.filename else ""
            _err(f"pack: error: {where}{e.strerror or e}; {ENV_FAULTS[e.errno]}")
            sys.exit(EXIT_USAGE)
        _err(f"pack: internal error: {type(e).__name__}: {e} (set PACK_DEBUG=1 for the traceback)")
        sys.exit(EXIT_CRASH)


if __name__ == "__main__":
    main()
