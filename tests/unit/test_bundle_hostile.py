"""Hostile bundles, built here: each is refused with one sentence (or its damage named), and nothing is
ever written outside the extraction folder."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pack import bundle, untar
from pack.errors import BundleError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sums_of(files: dict[str, bytes]) -> bytes:
    return "".join(f"{sha(d)}  {n}\n" for n, d in sorted(files.items())).encode()


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, **attrs) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    for k, v in attrs.items():
        setattr(info, k, v)
    return info, (data if info.size else None)


def build(path: Path, members: list[tuple], fmt=tarfile.PAX_FORMAT, compress: str = "gz") -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    path.write_bytes(gzip.compress(raw) if compress == "gz" else raw)
    return path


def good(files: dict[str, bytes]) -> list[tuple]:
    """A well-formed bundle's members: SHA256SUMS first, then the files it lists."""
    return [member("SHA256SUMS", sums_of(files))] + [member(n, d) for n, d in files.items()]


RUN = {
    "runs/p/r/1/run.json": b'{"paper": "p", "row": "r", "run_id": "1", "status": "complete"}',
    "runs/p/r/1/SHA256SUMS": b"",
}


@pytest.fixture
def box(tmp_path):
    """(bundle path, dest) inside a folder of their own; afterwards nothing else may exist there."""
    root = tmp_path / "box"
    root.mkdir()
    yield root / "b.tar.gz", root / "dest"
    stray = [p for p in root.rglob("*") if p != root / "b.tar.gz" and root / "dest" not in (p, *p.parents)]
    assert not stray, f"written outside the extraction folder: {stray}"
    assert not (tmp_path / "outside.txt").exists() and not Path("/tmp/pack-hostile-outside").exists()


def refused(path: Path, dest: Path, limits=None) -> str:
    dest.mkdir(exist_ok=True)
    with pytest.raises(BundleError) as e:
        untar.extract(path, dest, limits)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    assert BundleError.exit_code == 2
    return msg


HOSTILE = {
    "absolute path": ([member("/tmp/pack-hostile-outside", b"x")], "absolute"),
    "dot-dot": ([member("../outside.txt", b"pwn")], "'..'"),
    "dot-dot inside": ([member("runs/../../outside.txt", b"pwn")], "'..'"),
    "symlink out": ([member("runs/l", kind=tarfile.SYMTYPE, linkname="/etc/passwd")], "symbolic link"),
    "symlink in": ([member("runs/l", kind=tarfile.SYMTYPE, linkname="run.json")], "symbolic link"),
    "hard link": ([member("runs/h", kind=tarfile.LNKTYPE, linkname="SHA256SUMS")], "hard link"),
    "char device": ([member("runs/null", kind=tarfile.CHRTYPE, devmajor=1, devminor=3)], "device"),
    "block device": ([member("runs/sda", kind=tarfile.BLKTYPE)], "device"),
    "fifo": ([member("runs/fifo", kind=tarfile.FIFOTYPE)], "FIFO"),
    "gnu sparse": ([member("runs/sparse", kind=tarfile.GNUTYPE_SPARSE)], "sparse"),
    "duplicate": (good(RUN) + [member("runs/p/r/1/run.json", b"{}")], "same name"),
    "case duplicate": (good(RUN) + [member("runs/p/r/1/RUN.json", b"{}")], "differ only in case"),
    "file before sums": ([member("runs/p/r/1/run.json", b"{}")] + good(RUN), "comes before SHA256SUMS"),
    "no sums": ([member("BUNDLE.json", b"{}")], "holds no SHA256SUMS"),
    "non-utf8 sums": ([member("SHA256SUMS", b"\xff\xfe" + sums_of(RUN))], "not UTF-8"),
    "bad sums line": ([member("SHA256SUMS", b"deadbeef  run.json\n")], "not '<sha256>  <name>'"),
    "sums dot-dot": ([member("SHA256SUMS", f"{sha(b'')}  ../x\n".encode())], "'..' path"),
    "sums twice": (
        [member("SHA256SUMS", f"{sha(b'')}  a\n{sha(b'')}  ./a\n".encode())],
        "names a file twice",
    ),
    "huge pax header": ([member("a", b"x", pax_headers={"comment": "x" * (2 << 20)})], "extended header"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bundle_is_refused_in_one_sentence(box, case):
    path, dest = box
    members, phrase = HOSTILE[case]
    build(path, members)
    assert phrase in refused(path, dest)


def test_caps_are_named_and_configurable(box, monkeypatch):
    path, dest = box
    files = {f"runs/p/r/1/f{i}": bytes(1000) for i in range(10)} | RUN
    build(path, good(files))
    assert "member-count cap" in (msg := refused(path, dest, untar.Limits(max_members=5)))
    assert "--max-members or PACK_BUNDLE_MAX_MEMBERS" in msg
    assert "per-member cap of 512 bytes" in refused(path, dest, untar.Limits(max_member_bytes=512))
    assert "total cap of 4 KiB" in refused(path, dest, untar.Limits(max_bytes=4096))
    monkeypatch.setenv("PACK_BUNDLE_MAX_BYTES", "4K")
    assert "total cap of 4 KiB" in refused(path, dest, untar.Limits.from_env())
    assert untar.Limits.from_env(max_bytes="1M").max_bytes == 1 << 20  # the option beats the variable
    monkeypatch.setenv("PACK_BUNDLE_MAX_BYTES", "lots")
    with pytest.raises(BundleError, match="PACK_BUNDLE_MAX_BYTES: 'lots' is not a size"):
        untar.Limits.from_env()


def test_compression_bomb_stops_while_inflating(box):
    """Headers tarfile would read whole (a pax record under the header cap, repeated) still count."""
    path, dest = box
    members = good(RUN) + [
        member(f"junk{i}", b"", pax_headers={"comment": "z" * (900 << 10)}) for i in range(3)
    ]
    build(path, members)
    assert path.stat().st_size < 64 << 10  # a small download …
    msg = refused(path, dest, untar.Limits(max_bytes=256 << 10, max_members=4))
    assert "decompresses to more than" in msg  # … refused before it inflates past the cap


def test_truncated_corrupt_and_non_tar(box):
    path, dest = box
    files = {f"runs/p/r/1/f{i}": os.urandom(4000) for i in range(8)} | RUN
    build(path, good(files))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert "truncated or corrupt" in refused(path, dest)
    for junk in (b"", b"not a tarball at all\n" * 40, os.urandom(3000), b"\x1f\x8b" + os.urandom(500)):
        path.write_bytes(junk)
        shutil.rmtree(dest)
        msg = refused(path, dest)
        assert "truncated or corrupt" in msg or "no SHA256SUMS" in msg


def test_missing_path_and_directory_as_bundle(tmp_path):
    with pytest.raises(BundleError, match="no such file"):
        untar.extract(tmp_path / "nonexist.tar.gz", tmp_path / "d")
    with pytest.raises(BundleError, match="not a file"):
        untar.extract(tmp_path, tmp_path / "d")


def test_damage_is_named_file_by_file_and_unlisted_files_are_not_written(box):
    path, dest = box
    files = dict(RUN) | {"runs/p/r/1/reps/rep-000/rep.json": b"{}", "runs/p/r/1/log": b"ok"}
    members = good(files)
    members = [m for m in members if m[0].name != "runs/p/r/1/log"]  # listed, missing
    members = [member(m[0].name, b"{ }") if m[0].name.endswith("rep.json") else m for m in members]  # changed
    members += [member("runs/p/r/1/reps/.rep-003.tmp", b"half"), member("stray.sh", b"rm -rf ~")]  # unlisted
    members += [member("runs/p/r/1/reps/rep-001/rep.json/", kind=tarfile.DIRTYPE)]  # a dir, no file listed
    files2 = files | {"runs/p/r/1/d": b"file"}
    members[0] = member("SHA256SUMS", sums_of(files2))
    members.append(member("runs/p/r/1/d", kind=tarfile.DIRTYPE))  # a directory where a file is expected
    build(path, members)
    dest.mkdir()
    ex = untar.extract(path, dest)
    got = {p.name: p.what for p in ex.problems}
    assert "checksum mismatch" in got["runs/p/r/1/reps/rep-000/rep.json"]
    assert "not in the bundle" in got["runs/p/r/1/log"]
    assert "not listed" in got["runs/p/r/1/reps/.rep-003.tmp"] and "not listed" in got["stray.sh"]
    assert "is a directory in the bundle" in got["runs/p/r/1/d"]
    assert not (dest / "stray.sh").exists() and not (dest / "runs/p/r/1/reps/.rep-003.tmp").exists()
    assert (dest / "runs/p/r/1/run.json").read_bytes() == RUN["runs/p/r/1/run.json"]


def test_control_characters_in_names_are_escaped(box):
    path, dest = box
    build(path, good(RUN) + [member("runs/\x1b[2Jevil", b"x")])
    dest.mkdir()
    (p,) = untar.extract(path, dest).problems
    assert "\x1b" not in str(p) and "\\x1b" in str(p)


def test_open_bundle_sorts_problems_under_their_runs(box):
    path, dest = box
    other = {k.replace("/1/", "/2/"): v.replace(b'"1"', b'"2"') for k, v in RUN.items()}
    files = RUN | other | {"context/expected/p/r.yaml": b"x: 1\n"}
    members = [
        member(n, b"tampered") if n == "runs/p/r/2/run.json" else (i, d)
        for (i, d), n in zip(good(files), ["SHA256SUMS", *files], strict=True)
    ]
    members.append(member("extra.txt", b"?"))
    build(path, members)
    dest.mkdir()
    opened = bundle.open_bundle(path, dest)
    by_run = {r.meta["run_id"]: r.problems for r in opened.runs}
    assert by_run["1"] == [] and "runs/p/r/2/run.json: checksum mismatch" in by_run["2"][0]
    assert opened.problems == ["extra.txt: in the bundle but not listed in its SHA256SUMS (not extracted)"]
    assert opened.context == {"context/expected/p/r.yaml": sha(b"x: 1\n")}


# ---------------------------------------------------------------- property: random member lists
NAME_PARTS = st.sampled_from(
    [
        "runs",
        "p",
        "r",
        "1",
        "..",
        ".",
        "",
        "a b",
        "é",
        "\x07",
        ".x.tmp",
        "run.json",
        "SHA256SUMS",
        "BUNDLE.json",
        "/",
        "A",
        "a",
    ]
)
KINDS = st.sampled_from(
    [
        tarfile.REGTYPE,
        tarfile.REGTYPE,
        tarfile.REGTYPE,
        tarfile.DIRTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.FIFOTYPE,
        tarfile.CHRTYPE,
    ]
)
ENTRY = st.tuples(
    st.lists(NAME_PARTS, min_size=1, max_size=4).map("/".join),
    KINDS,
    st.binary(max_size=300),
    st.sampled_from(["listed", "wrong digest", "unlisted"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(ENTRY, max_size=12), sums_first=st.booleans(), cap=st.sampled_from([None, 700]))
def test_random_member_lists_never_escape_and_every_listed_file_is_accounted_for(
    tmp_path_factory, entries, sums_first, cap
):
    root = tmp_path_factory.mktemp("prop")
    path, dest = root / "b.tar.gz", root / "dest"
    dest.mkdir()
    listed = {n: (d if how == "listed" else b"other") for n, k, d, how in entries if how != "unlisted"}
    normalised = {PurePosixPath(n).as_posix() for n in listed}  # 'runs/.' and 'runs' are one path
    try:
        sums = sums_of(listed)
    except ValueError:
        sums = b""
    members = [member(n, d, kind=k, linkname="../../etc/passwd") for n, k, d, _ in entries]
    sums_member = member("SHA256SUMS", sums)
    members = [sums_member, *members] if sums_first else [*members, sums_member]
    build(path, members)
    limits = untar.Limits(max_bytes=cap, max_member_bytes=cap) if cap else None
    try:
        ex = untar.extract(path, dest, limits)
    except BundleError as e:
        assert "\n" not in str(e) and str(e).startswith(str(path))
        ex = None
    # Nothing outside dest, nothing but plain files and folders inside it, only listed files written.
    assert sorted(p.name for p in root.iterdir()) == ["b.tar.gz", "dest"]
    for p in dest.rglob("*"):
        assert not p.is_symlink() and (p.is_file() or p.is_dir())
        assert os.path.realpath(p).startswith(os.path.realpath(dest) + os.sep)
        if p.is_file():
            assert p.relative_to(dest).as_posix() in normalised
    if ex is not None:
        named = {p.name for p in ex.problems}
        for name, digest in ex.sums.items():
            f = dest / name
            ok = f.is_file() and sha(f.read_bytes()) == digest
            assert ok or name in named, f"{name}: damaged but not named"


def test_hash_consistent_hostile_run_files_are_row_verdicts_not_crashes(box):
    """Files that match their checksums but are not what the pack writes: that row ERRORs or FAILs,
    the others are judged."""
    from pack import reviewer

    path, dest = box
    bad_json = {"runs/p/r/1/run.json": b"[1, 2]", "runs/p/r/1/SHA256SUMS": b""}
    from tests.unit.test_status import record

    valid = json.dumps(record("2") | {"paper": "p", "row": "s"}).encode()
    bad_sums = {"runs/p/s/2/run.json": valid, "runs/p/s/2/SHA256SUMS": b"\xff\xfe not utf-8"}
    build(path, good(bad_json | bad_sums))
    judged = reviewer.judge_bundle(path)
    rows = {r.row: r for r in judged.rows}
    assert rows["r"].verdict == "ERROR" and "not a run record" in rows["r"].why
    assert rows["r"].why.startswith(f"{path}:runs/p/r/1/run.json")
    assert rows["s"].verdict == "FAIL" and "SHA256SUMS: not UTF-8 text" in rows["s"].why


def test_bundle_output_that_cannot_be_written_is_one_sentence(tmp_path):
    from pack.errors import PackError

    run = tmp_path / "run"
    run.mkdir()
    from pack import fsio
    from tests.unit.test_status import record, write_reps

    write_reps(run)  # a valid, intact run: bundle.make checks run.json against its repetitions
    fsio.write_json_atomic(run / "run.json", record("1"))
    fsio.write_sums(run)
    with pytest.raises(PackError, match="is a directory; give the bundle's file name"):
        bundle.make([run], tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PackError, match="cannot write the bundle"):
        bundle.make([run], tmp_path / "afile" / "b.tar.gz")


def test_a_name_this_machine_cannot_hold_is_a_problem_not_a_crash(box):
    path, dest = box
    long_name = "runs/p/r/1/" + "x" * 300  # longer than a file name may be (255 bytes on Linux filesystems)
    build(path, good(RUN | {long_name: b"data"}))
    dest.mkdir()
    problems = {p.name: p.what for p in untar.extract(path, dest).problems}
    assert "cannot be extracted here" in problems[long_name]


def test_a_full_disk_is_one_sentence_naming_the_folder(box, monkeypatch):
    import errno as errno_

    path, dest = box
    build(path, good(RUN))
    dest.mkdir()

    def full(*a, **k):
        raise OSError(errno_.ENOSPC, "No space left on device")

    monkeypatch.setattr(untar, "_write", full)
    with pytest.raises(BundleError) as e:
        untar.extract(path, dest)
    msg = str(e.value)
    assert msg.startswith(f"{dest}: cannot write") and "No space left on device" in msg and "TMPDIR" in msg


def test_bundle_json_cannot_point_judging_outside_the_extraction(box):
    """Run folders come from SHA256SUMS' (checked) names; BUNDLE.json's own paths are only compared."""
    from pack import reviewer
    from tests.unit.test_status import record

    path, dest = box
    meta = {"runs": [{"path": "../../etc", "paper": "x"}, {"path": "runs/p/s/2", "paper": "evil"}]}
    files = {
        "BUNDLE.json": json.dumps(meta).encode(),
        "runs/p/s/2/run.json": json.dumps(record("9") | {"paper": "p", "row": "other"}).encode(),
        "runs/p/s/2/SHA256SUMS": b"",
    }
    build(path, good(files))
    dest.mkdir()
    opened = bundle.open_bundle(path, dest)
    assert [r.path for r in opened.runs] == [dest / "runs/p/s/2"]
    assert opened.runs[0].meta["paper"] == "p"  # the path's, not BUNDLE.json's
    assert opened.problems == ["../../etc: listed in BUNDLE.json but not in the bundle"]
    rows = reviewer.judge_bundle(path).rows
    moved = next(r for r in rows if r.row == "s")
    assert (
        moved.verdict == "FAIL"
        and "run.json is p:other run 9, but the bundle holds it as p:s run 2" in moved.why
    )
