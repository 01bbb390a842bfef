"""Judging what someone else sent: a bundle against its own expectations, or against the reviewer's.

A verdict is only as good as what it compared against, so every judged target records its basis:
which manifests and expectation files (with one hash over them, `bundle.context_digest`), from where,
and — with `--expected DIR` — where the reviewer's copy and the bundle's disagree. `verdict_meta`
adds the verifier's pack version and environment, so the verdict JSON says what produced it.
"""

from __future__ import annotations

import platform
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import __version__, bundle, fsio, paths
from .errors import IntegrityError, PackError


@dataclass
class Judged:
    rows: list = field(default_factory=list)  # RowVerdict
    basis: list[dict] = field(default_factory=list)  # one per target


def home_root(given: Path) -> Path:
    """The pack home (manifests/ + expected/) that --expected DIR names: DIR, or DIR/.. for DIR=expected/."""
    for root in (given, given.parent):
        if (
            (root / "expected").is_dir()
            and (root / "manifests").is_dir()
            and (root == given or given.name == "expected")
        ):
            return root.resolve()
    raise PackError(
        f"{given}: holds no manifests/ and expected/ folders; give a checkout of the pack "
        "(or its expected/ folder) to judge against"
    )


def context_of(root: Path, rows: set[tuple[str, str]]) -> dict[str, str]:
    """{context/… name: sha256} of the files under `root` that judging these rows reads (as in a bundle)."""
    with paths.using_root(root):
        files = bundle.context_files(rows)
    return {name: fsio.sha256_file(p) for name, p in files.items()}


def disagreements(theirs: dict[str, str], ours: dict[str, str]) -> list[str]:
    """One line per context file the bundle and the reviewer's copy do not share byte for byte."""
    out = []
    for name in sorted(set(theirs) | set(ours)):
        short = name.removeprefix("context/")
        if name not in ours:
            out.append(f"{short}: in the bundle, not in yours")
        elif name not in theirs:
            out.append(f"{short}: in yours, not in the bundle")
        elif theirs[name] != ours[name]:
            out.append(f"{short}: differs (bundle {theirs[name][:12]}, yours {ours[name][:12]})")
    return out


def judge_bundle(path: Path, limits=None, trust: Path | None = None, expected: Path | None = None) -> Judged:
    """Every run of the bundle judged (damaged ones FAIL, naming each damaged file), and its basis."""
    from .verify import verify_run

    opened, tmp = bundle.safe_open(path, limits, trust)
    try:
        if not opened.runs and not opened.problems:
            raise PackError(f"{path}: the bundle holds no runs; make it with 'pack bundle' after 'pack run'")
        rows = {(str(r.meta.get("paper")), str(r.meta.get("row"))) for r in opened.runs}
        own = opened.root / "context"
        basis: dict = {
            "target": str(path),
            "bundle_pack": opened.meta.get("pack") or {},
            "signed_by": opened.signed_by,
        }
        if expected is not None:
            root = home_root(expected)
            ours = context_of(root, rows)
            basis |= {
                "expectations": "given",
                "root": str(root),
                "sha256": bundle.context_digest(ours),
                "files": ours,
                "bundle_sha256": bundle.context_digest(opened.context) if opened.context else None,
                "disagreements": disagreements(opened.context, ours),
            }
        elif opened.context and (own / "manifests").is_dir():
            root = own
            basis |= {
                "expectations": "bundle",
                "root": f"{path}:context/",
                "sha256": bundle.context_digest(opened.context),
                "files": opened.context,
            }
        else:
            root = None
            ours = context_of(paths.project_root(), rows)
            basis |= {
                "expectations": "local",
                "root": str(paths.project_root()),
                "sha256": bundle.context_digest(ours),
                "files": ours,
                "note": "the bundle carries no expectations of its own (made by an older pack)",
            }
        with paths.using_root(root) if root is not None else nullcontext():
            judged = [
                bundle.damaged_row(opened, r) if r.problems else _judge(r, opened, verify_run)
                for r in opened.runs
            ]
        if opened.problems:
            judged.append(bundle.damaged_row(opened, None))
        return Judged(judged, [basis])
    finally:
        tmp.cleanup()


def _judge(run: bundle.BundleRun, opened: bundle.Opened, verify_run):
    """One bundle run judged; a run record matching its checksums yet unreadable is that row's ERROR."""
    from .run_record import read_record
    from .rundir import RunDir

    try:
        rec = read_record(RunDir(run.path).run_json)
        if (rec.paper, rec.row, rec.run_id) != (run.meta["paper"], run.meta["row"], run.meta["run_id"]):
            row = bundle.damaged_row(None, run)
            row.why = (
                f"integrity: run.json is {rec.paper}:{rec.row} run {rec.run_id}, but the bundle holds it as "
                f"{run.meta['paper']}:{run.meta['row']} run {run.meta['run_id']}; "
                "the bundle was tampered with"
            )
            return row
        row = verify_run(run.path)
        row.why = row.why.replace(
            f"{opened.root}/", f"{opened.source}:"
        )  # name the bundle, not a temp folder
        return row
    except IntegrityError as e:
        row = bundle.damaged_row(None, run)
        row.verdict, row.why = "ERROR", str(e)
    row.why = row.why.replace(f"{opened.root}/", f"{opened.source}:")  # name the file inside the bundle
    return row


def judge_dirs(target: str, dirs: list[Path]) -> Judged:
    from .verify import verify_run

    rows = [verify_run(d) for d in dirs]
    root = paths.project_root()
    ours = context_of(root, {(r.paper, r.row) for r in rows})
    return Judged(
        rows,
        [
            {
                "target": target,
                "expectations": "local",
                "root": str(root),
                "sha256": bundle.context_digest(ours),
                "files": ours,
            }
        ],
    )


def describe(basis: dict) -> list[str]:
    """Lines for people: what each target was judged against, and where two copies disagree."""
    what = {
        "bundle": "the bundle's own expectations",
        "given": "the expectations in",
        "local": "the expectations in",
    }
    lines = []
    for b in basis:
        where = "" if b["expectations"] == "bundle" else f" {b['root']}"
        line = f"{b['target']}: judged against {what[b['expectations']]}{where} (sha256 {b['sha256'][:16]})"
        lines.append(line + (f"; {b['note']}" if b.get("note") else ""))
        if b.get("disagreements"):
            lines.append(
                f"  {len(b['disagreements'])} file(s) differ from the bundle's own "
                f"(sha256 {(b.get('bundle_sha256') or '-')[:16]}):"
            )
            lines += [f"    {d}" for d in b["disagreements"]]
        elif b["expectations"] == "given" and b.get("bundle_sha256"):
            lines.append("  identical to the bundle's own expectations")
    return lines


def verdict_meta(basis: list[dict]) -> dict:
    """What produced a verdict: the expectations it used, this pack and this environment."""
    from .provenance import git_sha

    return {
        "judged_against": basis,
        "verifier": {
            "pack": {"version": __version__, "git_sha": git_sha()},
            "python": platform.python_version(),
            "os": platform.platform(),
            "host": platform.node(),
            "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
