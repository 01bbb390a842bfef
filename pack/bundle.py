"""`pack bundle` / `pack verify BUNDLE`: a tarball of runs with checksums and fingerprints.

Layout inside the tarball:  BUNDLE.json, SHA256SUMS, runs/<paper>/<row>/<run-id>/...
Extraction refuses absolute paths, `..`, links and device files before writing anything.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from . import __version__, fsio
from .errors import IntegrityError

BUNDLE_SCHEMA = "pack.bundle/1"


def make(run_dirs: list[Path], out: Path) -> Path:
    """Write `out` (.tar.gz) holding the given run directories, atomically."""
    runs_meta, members = [], []
    for d in run_dirs:
        problems = fsio.check_sums(d)
        if problems:
            raise IntegrityError(f"refusing to bundle a damaged run: {problems[0]}")
        run = json.loads((d / "run.json").read_text())
        env = json.loads((d / "env.json").read_text()) if (d / "env.json").is_file() else {}
        arc = PurePosixPath("runs", run["paper"], run["row"], run["run_id"])
        runs_meta.append({"paper": run["paper"], "row": run["row"], "run_id": run["run_id"], "status": run["status"],
                          "path": str(arc), "gpu": env.get("gpu", {}), "pack": env.get("pack", {})})
        members += [(p, arc / p.relative_to(d).as_posix()) for p in fsio.list_files(d, exclude=())]
    meta = {"schema": BUNDLE_SCHEMA, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "pack_version": __version__, "runs": runs_meta}
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        (tmpd / "BUNDLE.json").write_text(json.dumps(meta, indent=2))
        digests = fsio.sha256_many([p for p, _ in members])
        lines = {str(a): digests[p] for p, a in members}
        lines["BUNDLE.json"] = fsio.sha256_file(tmpd / "BUNDLE.json")
        (tmpd / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in sorted(lines.items())))
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(out.name + ".part")
        with tarfile.open(part, "w:gz") as tar:
            tar.add(tmpd / "BUNDLE.json", arcname="BUNDLE.json")
            tar.add(tmpd / "SHA256SUMS", arcname="SHA256SUMS")
            for p, arc in members:
                tar.add(p, arcname=str(arc), recursive=False)
        part.replace(out)
    return out


def _safe_members(tar: tarfile.TarFile, path: Path) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts:
            raise IntegrityError(f"{path}: refusing member '{m.name}' (absolute or '..' path); the bundle is unsafe to extract")
        if not (m.isfile() or m.isdir()):
            raise IntegrityError(f"{path}: refusing member '{m.name}' (a link or special file); bundles hold plain files only")
    return members


def extract(path: Path, dest: Path) -> Path:
    """Check every member is safe, extract into dest, verify the bundle's SHA256SUMS; return dest."""
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise IntegrityError(f"{path}: not a readable tarball ({e}); re-download or re-create it with 'pack bundle'") from None
    with tar:
        members = _safe_members(tar, path)
        try:
            tar.extractall(dest, members=members, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(dest, members=members)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise IntegrityError(f"{path}: truncated or damaged tarball ({e})") from None
    problems = fsio.check_sums(dest)
    if problems:
        raise IntegrityError(f"bundle {path.name}: " + problems[0].replace(str(dest) + "/", ""))
    return dest
