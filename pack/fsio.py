"""Atomic, checksummed file writes. Every file the pack produces goes through here.

A write lands as a temp file in the same directory, fsynced, then renamed over the target, so a
reader (or a SIGKILL) sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHUNK = 4 << 20  # 4 MiB reads: hashlib releases the GIL on large updates, so threads overlap
LOCK_NAME = ".pack.lock"  # a run folder's lock file: held by the process running it, never checksummed
_fault_count = 0


def fault_point(label: str) -> None:
    """Crash-test hook at every durable step (like SQLite's fault injection): with PACK_FAULT_TRACE=FILE
    each step's label is appended to FILE; with PACK_FAULT_AT=N the process SIGKILLs itself at step N
    (PACK_FAULT_SIGNAL=INT sends SIGINT instead: a Ctrl-C at exactly that step)."""
    global _fault_count
    trace, at = os.environ.get("PACK_FAULT_TRACE"), os.environ.get("PACK_FAULT_AT")
    if not (trace or at):
        return
    _fault_count += 1
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(f"{_fault_count}\t{label}\n")
    if at and int(at) == _fault_count:
        import signal

        os.kill(os.getpid(), getattr(signal, "SIG" + os.environ.get("PACK_FAULT_SIGNAL", "KILL")))


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 would hide results from other users


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        fault_point(f"before replacing {path.name}")
        os.replace(tmp, path)
        fault_point(f"after replacing {path.name}")
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def json_text(obj, indent: int | None = 2) -> str:
    """The one way `--json` output and reports are written: valid JSON (RFC 8259), so a NaN or inf is
    written as null — never a bare NaN that strict parsers reject; numpy scalars and paths as values."""
    return json.dumps(
        _finite(obj), indent=indent, default=lambda o: _finite(_json_default(o, str)), allow_nan=False
    )


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _json_default(o, fallback=None):
    # numpy scalars and paths are common in results; anything else is a bug worth seeing.
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if fallback is not None:
        return fallback(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def sha256_many(paths: Iterable[Path], workers: int | None = None) -> dict[Path, str]:
    paths = list(paths)
    workers = workers or min(8, (os.cpu_count() or 2))
    if len(paths) <= 1:
        return {p: sha256_file(p) for p in paths}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(paths, pool.map(sha256_file, paths), strict=False))


SUMS_NAME = "SHA256SUMS"


def list_files(root: Path, exclude: tuple[str, ...] = (SUMS_NAME,)) -> list[Path]:
    """Regular files under root, sorted, skipping temp files and root-level names in `exclude`
    (the sums file itself; a repetition's own SHA256SUMS further down is covered like any file)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        top = Path(dirpath) == root
        for name in sorted(filenames):
            temp = name.startswith(".") and name.endswith(".tmp")
            if (top and name in exclude) or temp or name == LOCK_NAME:
                continue
            out.append(Path(dirpath) / name)
    return out


def write_sums(root: Path, files: Iterable[Path] | None = None) -> dict[str, str]:
    """Write root/SHA256SUMS in `sha256sum -c` format; return {relative path: digest}."""
    files = list_files(root) if files is None else list(files)
    digests = sha256_many(files)
    rel = {p.relative_to(root).as_posix(): d for p, d in digests.items()}
    body = "".join(f"{d}  {name}\n" for name, d in sorted(rel.items()))
    write_text_atomic(root / SUMS_NAME, body)
    return rel


def read_sums(root: Path) -> dict[str, str]:
    path = root / SUMS_NAME
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, IsADirectoryError) as e:
        from .errors import IntegrityError

        why = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else "a directory, not a file"
        raise IntegrityError(f"{path}: {why}; the checksum file is damaged") from None
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            from .errors import IntegrityError

            raise IntegrityError(f"{path}:{i}: not a sha256sum line; regenerate the run's checksums")
        out[name] = digest
    return out


def check_sums(root: Path) -> list[str]:
    """Compare files under root with SHA256SUMS; return one sentence per problem (empty: intact)."""
    sums_path = root / SUMS_NAME
    if not sums_path.is_file():
        return [f"{sums_path}: checksum file is missing; the run was not finished or was tampered with"]
    from .errors import IntegrityError

    try:
        recorded = read_sums(root)
    except IntegrityError as e:  # a damaged checksum file is one more problem to name, not a crash
        return [str(e)]
    present = {p.relative_to(root).as_posix(): p for p in list_files(root)}
    problems = []
    for name in sorted(set(recorded) - set(present)):
        problems.append(f"{root / name}: listed in SHA256SUMS but missing")
    for name in sorted(set(present) - set(recorded)):
        problems.append(f"{root / name}: present but not listed in SHA256SUMS (added after the run)")
    common = [present[n] for n in sorted(set(recorded) & set(present))]
    for path, digest in sha256_many(common).items():
        name = path.relative_to(root).as_posix()
        if digest != recorded[name]:
            problems.append(f"{path}: checksum mismatch (file changed or truncated after the run)")
    return problems
