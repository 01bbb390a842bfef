"""`pack bundle` / `pack verify BUNDLE`: a self-contained tarball of runs, with checksums and provenance.

Layout, in this order (extraction reads the checksum manifest before anything it vouches for):
    SHA256SUMS                      sha256sum format; every other member except the signature is listed
    SHA256SUMS.sig                  optional SSH signature of SHA256SUMS (see signing.py)
    BUNDLE.json                     pack version and git sha, the runs, the context files' hashes
    context/manifests/…, context/expected/…   what judging the bundle needs: its papers' manifests,
                                    the catalogues and its rows' expectation files
    runs/<paper>/<row>/<run-id>/…   each run folder as written (its env.json is its provenance)
Extraction (untar.py) is safe against hostile bundles; damage is reported per file.
"""

from __future__ import annotations

import contextlib
import json
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from . import __version__, fsio, paths, untar
from .errors import IntegrityError, PackError
from .rundir import RunDir

BUNDLE_SCHEMA = "pack.bundle/2"
CATALOGUES = ("hardware.yaml", "images.yaml")


def context_files(papers_rows: set[tuple[str, str]]) -> dict[str, Path]:
    """{name in bundle: file here} for the manifests, catalogues and expectation files of these rows."""
    files = {f"context/manifests/{c}": paths.manifests_dir() / c for c in CATALOGUES}
    for paper, row in sorted(papers_rows):
        files[f"context/manifests/{paper}.yaml"] = paths.manifests_dir() / f"{paper}.yaml"
        files[f"context/expected/{paper}/{row}.yaml"] = paths.expected_dir() / paper / f"{row}.yaml"
    return {name: p for name, p in files.items() if p.is_file()}


def context_digest(files: dict[str, str]) -> str:
    """One hash naming a set of expectations: sha256 of their sorted `digest  name` lines."""
    import hashlib

    return hashlib.sha256("".join(f"{d}  {n}\n" for n, d in sorted(files.items())).encode()).hexdigest()


def make(run_dirs: list[Path], out: Path, sign_key: Path | None = None) -> Path:
    """Write `out` (.tar.gz) holding the given run directories and their context, atomically."""
    from .provenance import git_sha

    runs_meta, members = [], []
    for d in run_dirs:
        rd = RunDir(d)
        problems = rd.integrity()  # checksums and run.json against its repetitions
        if problems:
            raise IntegrityError(f"refusing to bundle a damaged run: {problems[0]}")
        run = json.loads(rd.run_json.read_text())
        env = json.loads(rd.env_json.read_text()) if rd.env_json.is_file() else {}
        arc = PurePosixPath("runs", run["paper"], run["row"], run["run_id"])
        runs_meta.append(
            {
                "paper": run["paper"],
                "row": run["row"],
                "run_id": run["run_id"],
                "status": run["status"],
                "scale": run.get("scale"),
                "hardware": run.get("hardware"),
                "path": str(arc),
                "gpu": env.get("gpu", {}),
                "pack": env.get("pack", {}),
            }
        )
        members += [(p, str(arc / p.relative_to(d).as_posix())) for p in fsio.list_files(d, exclude=())]
    context = context_files({(r["paper"], r["row"]) for r in runs_meta})
    members += sorted(((p, name) for name, p in context.items()), key=lambda x: x[1])
    digests = fsio.sha256_many([p for p, _ in members])
    context_sums = {name: digests[p] for name, p in context.items()}
    meta = {
        "schema": BUNDLE_SCHEMA,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pack": {"version": __version__, "git_sha": git_sha()},
        "runs": runs_meta,
        "context": {"sha256": context_digest(context_sums), "files": context_sums},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        (tmpd / "BUNDLE.json").write_text(json.dumps(meta, indent=2))
        lines = {name: digests[p] for p, name in members}
        lines["BUNDLE.json"] = fsio.sha256_file(tmpd / "BUNDLE.json")
        sums = tmpd / untar.SUMS
        sums.write_text("".join(f"{d}  {n}\n" for n, d in sorted(lines.items())))
        head = [(sums, untar.SUMS)]
        if sign_key is not None:
            from . import signing

            head.append((signing.sign(sums, sign_key), untar.SIG))
        head.append((tmpd / "BUNDLE.json", "BUNDLE.json"))
        if out.is_dir():
            raise PackError(
                f"{out}: is a directory; give the bundle's file name, e.g. -o {out / 'bundle.tar.gz'}"
            )
        part = out.with_name(out.name + ".part")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(part, "w:gz") as tar:
                for p, arc in head + members:
                    tar.add(p, arcname=arc, recursive=False)
            part.replace(out)
        except OSError as e:
            with contextlib.suppress(OSError):
                part.unlink()
            raise PackError(
                f"{out}: cannot write the bundle ({e.strerror or e}); choose another -o path"
            ) from None
    return out


@dataclass
class BundleRun:
    path: Path  # the extracted run folder
    meta: dict  # its BUNDLE.json entry (paper, row, run_id, …), or what its path says
    problems: list[str] = field(default_factory=list)


@dataclass
class Opened:
    """An extracted bundle: its runs (each with its own integrity problems), and problems of the rest."""

    source: Path
    root: Path
    meta: dict
    runs: list[BundleRun]
    problems: list[str]  # damage outside every run folder (BUNDLE.json, context, stray files)
    context: dict[str, str]  # context file name -> sha256, as SHA256SUMS vouches for it
    signed_by: str | None = None


def _run_of(name: str) -> str | None:
    parts = name.split("/")
    return "/".join(parts[:4]) if len(parts) > 4 and parts[0] == "runs" else None


def open_bundle(
    path: Path, dest: Path, limits: untar.Limits | None = None, trust: Path | None = None
) -> Opened:
    """Extract `path` into `dest` and sort every problem under the run it belongs to.

    With `trust` (an SSH public key), an unsigned or wrongly signed bundle is refused before any file
    is written, so a consistently re-hashed tampered copy no longer passes.
    """
    signer: dict = {}

    def check(sums: bytes, sig: bytes | None) -> None:
        if trust is not None:
            from . import signing

            signer["who"] = signing.verify(sums, sig, trust, path)

    ex = untar.extract(path, dest, limits, on_sums=check)
    damaged = {p.name for p in ex.problems}
    meta: dict = {}
    bundle_problems: list[str] = []
    if (dest / "BUNDLE.json").is_file() and "BUNDLE.json" not in damaged:
        try:
            meta = json.loads((dest / "BUNDLE.json").read_text(encoding="utf-8"))
        except ValueError:
            bundle_problems.append("BUNDLE.json: not JSON")
    if not isinstance(meta, dict):
        meta, bundle_problems = {}, bundle_problems + ["BUNDLE.json: not a JSON object"]
    # The run folders are those SHA256SUMS names (safe paths, checked by untar); BUNDLE.json only adds
    # what it says about each (scale, hardware) and must agree with them.
    listed = meta.get("runs") if isinstance(meta.get("runs"), list) else []
    said = {r["path"]: r for r in listed if isinstance(r, dict) and isinstance(r.get("path"), str)}
    entries: dict[str, dict] = {}
    for name in ex.sums:
        run = _run_of(name)
        if run and run not in entries:
            _, paper, row, run_id = run.split("/")
            entries[run] = {**said.get(run, {}), "paper": paper, "row": row, "run_id": run_id, "path": run}
            if meta and run not in said:
                bundle_problems.append(f"{run}: a run folder that BUNDLE.json does not list")
    for run in sorted(set(said) - set(entries)):
        bundle_problems.append(f"{untar.show(run)}: listed in BUNDLE.json but not in the bundle")
    runs = {k: BundleRun(dest / k, v) for k, v in sorted(entries.items())}
    for p in ex.problems:
        owner = _run_of(p.name)
        (runs[owner].problems if owner in runs else bundle_problems).append(str(p))
    for k, r in runs.items():
        if f"{k}/run.json" not in ex.sums and not r.problems:
            r.problems.append(f"{k}/run.json: not in the bundle, though other files of this run folder are")
    context = {n: d for n, d in ex.sums.items() if n.startswith("context/") and n not in damaged}
    return Opened(
        source=path,
        root=dest,
        meta=meta,
        runs=list(runs.values()),
        problems=bundle_problems,
        context=context,
        signed_by=signer.get("who"),
    )


def safe_open(path: Path, limits: untar.Limits | None = None, trust: Path | None = None):
    """open_bundle into a fresh temporary folder: (Opened, TemporaryDirectory), removed on error."""
    tmp = tempfile.TemporaryDirectory(prefix="pack-bundle-")
    try:
        return open_bundle(path, Path(tmp.name), limits, trust), tmp
    except BaseException:
        tmp.cleanup()
        raise


def damaged_row(opened: Opened | None, run: BundleRun | None):
    """The FAIL verdict of a damaged run (or, with run=None, of the bundle's own files), naming every file."""
    from .verify import RowVerdict

    if run is None:
        return RowVerdict(
            paper="bundle",
            row=opened.source.name,
            run_id="-",
            run_dir=str(opened.source),
            scale="-",
            hardware="-",
            gpu_models=[],
            verdict="FAIL",
            why=f"integrity: {len(opened.problems)} problem(s): " + "; ".join(opened.problems),
            metrics=[],
        )
    m = run.meta
    return RowVerdict(
        paper=str(m.get("paper", "?")),
        row=str(m.get("row", "?")),
        run_id=str(m.get("run_id", "?")),
        run_dir=str(run.path),
        scale=str(m.get("scale") or "?"),
        hardware=str(m.get("hardware") or "?"),
        gpu_models=[],
        verdict="FAIL",
        why=f"integrity: {len(run.problems)} damaged file(s) in the bundle: " + "; ".join(run.problems),
        metrics=[],
    )
