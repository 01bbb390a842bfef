"""Safe extraction of an untrusted bundle: tar's `data` filter and what it lacks, in one streaming pass.

A bundle comes from someone else, so reading it must not write outside the extraction folder, fill
the disk, or write anything the bundle's checksum manifest does not vouch for. In one pass:

- the decompressed stream, each member and the members' sum are capped (`Limits`: options or env);
- SHA256SUMS comes first (BUNDLE.json may precede it, as older bundles wrote it) and is read before
  any file is written; its signature, when the caller demands one, is checked before that too;
- a member passes `tarfile.data_filter` AND is a plain file or directory (no link of any kind, device,
  FIFO or sparse file), with a relative name free of '..' that no other member has (case-folded);
- only files that SHA256SUMS lists are written, each hashed while it is written; files it does not
  list (temp-looking names included) are never written, only named.

A stream that cannot be read to its end (truncated, corrupt, not a tarball, over a cap) and an unsafe
member are a `BundleError` (one sentence, exit 2). Damage inside a readable bundle (a changed, missing
or unlisted file) is returned as a list of `Problem`s, every one, so the intact runs can still be judged.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import lzma
import os
import re
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import BundleError

SUMS = "SHA256SUMS"
SIG = "SHA256SUMS.sig"
BEFORE_SUMS = {"BUNDLE.json"}  # may precede SHA256SUMS; held in memory until it is vouched for
SMALL_CAP = 64 << 20  # SHA256SUMS, its signature and BUNDLE.json are read into memory
CHUNK = 1 << 20
HEADER_CAP = 1 << 20  # a pax or GNU long-name header; real ones are a few hundred bytes
_SUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, what: str) -> int:
    """'8G', '512M', '100000' -> bytes (binary units); a bad value is one sentence naming `what`."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise BundleError(
            f"{what}: '{text}' is not a size; give a whole number with an optional K/M/G/T suffix"
        )
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def human(n: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if n >= _UNITS[unit] and n % _UNITS[unit] == 0:
            return f"{n // _UNITS[unit]} {unit}iB"
    return f"{n} bytes"


@dataclass(frozen=True)
class Limits:
    """What one bundle may make this machine hold. Defaults fit every row's runs with room to spare."""

    max_bytes: int = 8 << 30
    max_member_bytes: int = 2 << 30
    max_members: int = 100_000

    ENV = {
        "max_bytes": "PACK_BUNDLE_MAX_BYTES",
        "max_member_bytes": "PACK_BUNDLE_MAX_MEMBER_BYTES",
        "max_members": "PACK_BUNDLE_MAX_MEMBERS",
    }
    OPTION = {
        "max_bytes": "--max-bundle-bytes",
        "max_member_bytes": "--max-member-bytes",
        "max_members": "--max-members",
    }

    @classmethod
    def from_env(cls, **given) -> Limits:
        """Options (given, when not None) beat the PACK_BUNDLE_MAX_* variables, which beat the defaults."""
        values = {}
        for key, env in cls.ENV.items():
            raw = given.get(key)
            where = cls.OPTION[key]
            if raw is None and os.environ.get(env):
                raw, where = os.environ[env], env
            if raw is not None:
                values[key] = parse_size(raw, where)
        return cls(**values)

    def raise_hint(self, key: str) -> str:
        return f"raise it with {self.OPTION[key]} or {self.ENV[key]} if you trust this bundle"


@dataclass
class Problem:
    """One damaged, missing or unlisted file of a readable bundle."""

    name: str
    what: str

    def __str__(self) -> str:
        return f"{show(self.name)}: {self.what}"


@dataclass
class Extracted:
    root: Path
    sums: dict[str, str]
    problems: list[Problem] = field(default_factory=list)
    signature: bytes | None = None


def show(name: str) -> str:
    """A member name safe to print: control characters (terminal escapes) are shown escaped."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


class _Capped:
    """A decompressed stream that stops with a BundleError once it has produced more than `cap` bytes
    (a gzip bomb is refused while it inflates, not after it has filled the disk or memory)."""

    def __init__(self, f, cap: int, path: Path):
        self.f, self.cap, self.path, self.n = f, cap, path, 0

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(CHUNK if size is None or size < 0 else min(size, CHUNK))
        self.n += len(data)
        if self.n > self.cap:
            raise BundleError(
                f"{self.path}: decompresses to more than {human(self.cap)} (a compression bomb, "
                f"or bigger than the caps allow); {Limits().raise_hint('max_bytes')}"
            )
        return data


def _open(path: Path, limits: Limits):
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:2] == b"\x1f\x8b":
        raw = gzip.open(path, "rb")
    elif magic[:3] == b"BZh":
        raw = bz2.open(path, "rb")
    elif magic == b"\xfd7zXZ\x00":
        raw = lzma.open(path, "rb")
    else:
        raw = open(path, "rb")
    # Headers and padding: at most a few KiB per member on top of the data itself.
    return raw, _Capped(raw, limits.max_bytes + 8192 * (limits.max_members + 2), path)


class _TarInfo(tarfile.TarInfo):
    """Refuses oversized pax/GNU long-name headers, which tarfile would otherwise read whole into memory."""

    META_TYPES = (
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    )

    def _proc_member(self, tarfile_):
        if self.type in self.META_TYPES and self.size > HEADER_CAP:
            raise BundleError(
                f"a tar extended header of {self.size} bytes (more than {human(HEADER_CAP)}); "
                "the bundle is damaged or hostile"
            )
        return super()._proc_member(tarfile_)


def _safe_name(m: tarfile.TarInfo, path: Path, dest: Path) -> str:
    """The member's normalised name, or a BundleError saying why it may not be extracted."""
    name, what = m.name, show(m.name)
    kinds = {
        tarfile.SYMTYPE: "a symbolic link",
        tarfile.LNKTYPE: "a hard link",
        tarfile.CHRTYPE: "a device",
        tarfile.BLKTYPE: "a device",
        tarfile.FIFOTYPE: "a FIFO",
        tarfile.GNUTYPE_SPARSE: "a sparse file",
        tarfile.CONTTYPE: "a contiguous file",
    }
    if m.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE) or m.sparse is not None:
        kind = "a sparse file" if m.sparse is not None else kinds.get(m.type, f"of tar type {m.type!r}")
        raise BundleError(f"{path}: refusing member '{what}' ({kind}); a bundle holds plain files only")
    p = PurePosixPath(name)
    if not name or "\x00" in name or p.is_absolute() or ".." in p.parts or name.startswith("\\"):
        raise BundleError(
            f"{path}: refusing member '{what}' (an absolute, empty or '..' path); "
            "the bundle is unsafe to extract"
        )
    try:
        tarfile.data_filter(m, str(dest))  # tar's own checks (outside the destination, special files, …)
    except tarfile.FilterError as e:
        raise BundleError(
            f"{path}: refusing member '{what}' ({e}); the bundle is unsafe to extract"
        ) from None
    return p.as_posix().removeprefix("./") if p.as_posix() != "." else "."


def parse_sums(data: bytes, where: str) -> dict[str, str]:
    """SHA256SUMS (`sha256sum` format) -> {name: digest}; strict: UTF-8, hex digests, safe unique names."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleError(
            f"{where}: SHA256SUMS is not UTF-8 text (bad byte at offset {e.start}); "
            "the bundle is damaged or was not made by 'pack bundle'"
        ) from None
    out: dict[str, str] = {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _SUM_LINE.fullmatch(line)
        if not m:
            raise BundleError(
                f"{where}: SHA256SUMS line {i} is not '<sha256>  <name>'; the bundle is damaged"
            )
        digest, name = m.groups()
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts or p.as_posix() in out:
            why = "names a file twice" if p.as_posix() in out else "names an absolute or '..' path"
            raise BundleError(f"{where}: SHA256SUMS line {i} {why} ('{show(name)}'); the bundle is unsafe")
        out[p.as_posix()] = digest
    return out


def _read_small(tar: tarfile.TarFile, m: tarfile.TarInfo, path: Path) -> bytes:
    if m.size > SMALL_CAP:
        raise BundleError(
            f"{path}: '{show(m.name)}' is {m.size} bytes, more than the {human(SMALL_CAP)} it may be"
        )
    return tar.extractfile(m).read()


def _write(dest: Path, name: str, chunks) -> str:
    """Write one listed file under dest (never following a link, never over an existing path); its sha256."""
    target = dest.joinpath(*name.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    h = hashlib.sha256()
    with os.fdopen(fd, "wb") as f:
        for chunk in chunks:
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def _member_chunks(tar: tarfile.TarFile, m: tarfile.TarInfo):
    f = tar.extractfile(m)
    while chunk := f.read(CHUNK):
        yield chunk


def extract(
    path: Path,
    dest: Path,
    limits: Limits | None = None,
    on_sums: Callable[[bytes, bytes | None], None] | None = None,
) -> Extracted:
    """Extract the files SHA256SUMS lists from bundle `path` into the empty folder `dest`.

    `on_sums(sums_bytes, signature_bytes_or_None)` runs once the manifest (and the signature member
    right after it, if any) is read, before any file is written: it may refuse the bundle by raising.
    """
    limits = limits or Limits.from_env()
    if not path.exists():
        raise BundleError(f"{path}: no such file; give the path of a bundle made by 'pack bundle'")
    if not path.is_file():
        raise BundleError(f"{path}: not a file; a bundle is one .tar.gz made by 'pack bundle'")
    try:
        raw, stream = _open(path, limits)
    except OSError as e:
        raise BundleError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        with raw:
            tar = tarfile.open(fileobj=stream, mode="r|", tarinfo=_TarInfo)
            return _walk(tar, path, dest, limits, on_sums)
    except BundleError as e:
        if str(e).startswith(str(path)):
            raise
        raise BundleError(f"{path}: {e}") from None
    except _WriteError as e:
        raise BundleError(str(e)) from None
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError) as e:
        reason = str(e) or type(e).__name__
        raise BundleError(
            f"{path}: truncated or corrupt, or not a tar archive ({reason}); "
            "download it again or re-create it with 'pack bundle'"
        ) from None


_MACHINE_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


class _WriteError(Exception):
    """This machine could not write the extraction folder (disk full, read-only): not the bundle's fault."""


def _walk(tar, path: Path, dest: Path, limits: Limits, on_sums) -> Extracted:
    seen: dict[str, str] = {}  # case-folded name -> name
    kinds: dict[str, str] = {}  # name -> "file" | "dir"
    held: dict[str, bytes] = {}  # members that came before SHA256SUMS
    sums_data: bytes | None = None
    signature: bytes | None = None
    checked = False
    out = Extracted(root=dest, sums={})
    written: dict[str, str] = {}
    total = count = 0

    def vouch():
        nonlocal checked
        if not checked:
            checked = True
            if on_sums:
                on_sums(sums_data, signature)
            for name, data in held.items():
                _place(name, [data])

    def _place(name: str, chunks) -> None:
        if name not in out.sums:
            out.problems.append(
                Problem(name, "in the bundle but not listed in its SHA256SUMS (not extracted)")
            )
            return
        try:
            written[name] = _write(dest, name, chunks)
        except (FileExistsError, IsADirectoryError, NotADirectoryError):
            out.problems.append(
                Problem(name, "cannot be extracted: a file and a directory of the bundle share this path")
            )
            return
        except OSError as e:
            if e.errno in _MACHINE_FAULTS:  # this machine's fault, not the bundle's: stop, say what to fix
                raise _WriteError(
                    f"{dest}: cannot write the extracted bundle ({e.strerror or e}); "
                    "free space or choose another TMPDIR"
                ) from None
            out.problems.append(
                Problem(name, f"cannot be extracted here ({e.strerror or e})")
            )  # e.g. too long
            return
        if written[name] != out.sums[name]:
            out.problems.append(Problem(name, "checksum mismatch (changed or truncated after bundling)"))

    for m in tar:
        count += 1
        if count > limits.max_members:
            raise BundleError(
                f"{path}: more than {limits.max_members} members, over the member-count cap; "
                + limits.raise_hint("max_members")
            )
        name = _safe_name(m, path, dest)
        folded = name.casefold()
        if folded in seen:
            same = "the same name" if seen[folded] == name else "names that differ only in case"
            raise BundleError(
                f"{path}: two members have {same} ('{show(name)}'); a bundle names each file once"
            )
        seen[folded] = name
        kinds[name] = "dir" if m.isdir() else "file"
        if m.isdir():
            continue  # folders are made only as parents of listed files
        if m.size > limits.max_member_bytes:
            raise BundleError(
                f"{path}: member '{show(name)}' is {m.size} bytes, over the per-member cap of "
                f"{human(limits.max_member_bytes)}; " + limits.raise_hint("max_member_bytes")
            )
        total += m.size
        if total > limits.max_bytes:
            raise BundleError(
                f"{path}: its files add up to more than the total cap of {human(limits.max_bytes)}; "
                + limits.raise_hint("max_bytes")
            )
        if sums_data is None:
            if name == SUMS:
                sums_data = _read_small(tar, m, path)
                out.sums = parse_sums(sums_data, str(path))
            elif name in BEFORE_SUMS:
                held[name] = _read_small(tar, m, path)
            else:
                raise BundleError(
                    f"{path}: '{show(name)}' comes before SHA256SUMS; a bundle's checksum manifest "
                    "must come first (re-create the bundle with 'pack bundle')"
                )
            continue
        if name == SIG and not checked and signature is None:
            signature = out.signature = _read_small(tar, m, path)
            continue
        vouch()
        if name in out.sums:
            _place(name, _member_chunks(tar, m))
        else:
            out.problems.append(
                Problem(name, "in the bundle but not listed in its SHA256SUMS (not extracted)")
            )
    if sums_data is None:
        raise BundleError(
            f"{path}: holds no SHA256SUMS, so nothing in it can be checked; "
            "it was not made by 'pack bundle' or lost its checksum manifest"
        )
    vouch()
    for name in sorted(set(out.sums) - set(written)):
        if any(p.name == name for p in out.problems):
            continue
        why = (
            "is a directory in the bundle, where SHA256SUMS lists a file"
            if kinds.get(name) == "dir"
            else "listed in SHA256SUMS but not in the bundle"
        )
        out.problems.append(Problem(name, why))
    out.problems.sort(key=lambda p: p.name)
    return out
