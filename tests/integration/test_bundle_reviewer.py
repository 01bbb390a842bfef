"""The reviewer's path through the real CLI: a damaged bundle names every damaged file and still judges
the intact rows; unreadable bundles are one sentence with exit 2; bundles carry their own expectations
and judge with them in an empty folder; signatures made with ssh-keygen keys are required by --trust."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture
def author_bundle(pack, tmp_path) -> Path:
    pack("run", "wire-compression", "int6-clip-search", check=0)
    out = tmp_path / "author.tar.gz"
    pack("bundle", "-o", out, check=0)
    return out


def rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a bundle member by member; change(name, data) -> bytes, or None to drop the member."""
    import io

    with tarfile.open(src) as a, tarfile.open(dst, "w:gz") as b:
        for m in a.getmembers():
            data = a.extractfile(m).read()
            new = change(m.name, data)
            if new is None:
                continue
            m.size = len(new)
            b.addfile(m, io.BytesIO(new))
    return dst


def one_error_line(res, code=2) -> str:
    assert res.returncode == code, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("pack: error: ") and "Traceback" not in res.stderr, (
        res.stderr
    )
    return lines[0]


def test_damaged_bundle_names_every_damaged_file_and_judges_intact_rows(pack, author_bundle, tmp_path):
    def change(name, data):
        if "wire-compression" in name and name.endswith("run.log"):
            return data + b"x"  # one appended byte
        if "wire-compression" in name and name.endswith("rep-001/wire_table.json"):
            return None  # a listed file gone
        return data

    damaged = rewrite(author_bundle, tmp_path / "damaged.tar.gz", change)
    res = pack("verify", "--json", damaged)
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    rows = {r["row"]: r for r in doc["rows"]}
    bad = rows["wire-compression"]
    assert bad["verdict"] == "FAIL" and "run.log: checksum mismatch" in bad["why"]
    assert "rep-001/wire_table.json: listed in SHA256SUMS but not in the bundle" in bad["why"]
    assert rows["int6-clip-search"]["verdict"] == "PASS"  # the intact row is still judged
    assert doc["judged_against"][0]["expectations"] == "bundle"


def test_unlisted_files_in_a_bundle_are_flagged_not_extracted(pack, author_bundle, tmp_path):
    import io

    out = tmp_path / "extra.tar.gz"
    with tarfile.open(author_bundle) as a, tarfile.open(out, "w:gz") as b:
        for m in a.getmembers():
            b.addfile(m, a.extractfile(m))
        for name in ("runs/latent-bridge/wire-compression/.rep-003.tmp", "README-evil.txt"):
            info = tarfile.TarInfo(name)
            info.size = 4
            b.addfile(info, io.BytesIO(b"junk"))
    res = pack("verify", out)
    assert res.returncode == 1
    assert ".rep-003.tmp: in the bundle but not listed" in res.stdout and "README-evil.txt" in res.stdout


def test_unreadable_bundles_are_one_sentence_exit_2(pack, author_bundle, tmp_path):
    data = author_bundle.read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in one_error_line(pack("verify", tmp_path / "cut.tar.gz"))
    (tmp_path / "notes.txt").write_text("not a bundle\n")
    assert "not a tar archive" in one_error_line(pack("verify", tmp_path / "notes.txt"))
    assert "no such file or directory" in one_error_line(pack("verify", "nonexist.tar.gz"))
    assert "neither a file or folder here nor a known paper" in one_error_line(pack("verify", "nonexist"))
    line = one_error_line(pack("verify", author_bundle, "--max-member-bytes", "1K"))
    assert "per-member cap of 1 KiB" in line and "--max-member-bytes" in line
    line = one_error_line(pack("verify", author_bundle, env={"PACK_BUNDLE_MAX_MEMBERS": "3"}))
    assert "member-count cap" in line


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory) -> Path:
    """The pack as a user gets it: a wheel built from this tree, unpacked (no manifests/, no expected/)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (whl,) = wheels.glob("pack_repro-*.whl")
    site = tmp_path / "site"
    import zipfile

    zipfile.ZipFile(whl).extractall(site)
    assert not (site / "manifests").exists() and not (site / "expected").exists()
    return site


def in_empty_folder(site: Path, folder: Path):
    """Run the wheel's pack in `folder`, with no PACK_* variable and no checkout anywhere near."""
    folder.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACK_")}
    env["PYTHONPATH"] = str(site)

    def reviewer(*args):
        return subprocess.run(
            [sys.executable, "-m", "pack", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=folder,
            env=env,
            timeout=300,
        )

    return reviewer


def test_bundle_judged_in_an_empty_folder_from_a_wheel(pack, author_bundle, home, tmp_path, wheel_site):
    empty = tmp_path / "empty"
    reviewer = in_empty_folder(wheel_site, empty)
    shutil.copy(author_bundle, empty / "author.tar.gz")

    res = reviewer("verify", "author.tar.gz")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "judged against the bundle's own expectations (sha256 " in res.stdout
    assert res.stdout.count(" PASS ") >= 2
    doc = json.loads(reviewer("verify", "--json", "author.tar.gz").stdout)
    basis = doc["judged_against"][0]
    assert basis["expectations"] == "bundle" and len(basis["sha256"]) == 64
    assert "context/expected/latent-bridge/wire-compression.yaml" in basis["files"]
    assert doc["verifier"]["pack"]["version"] and doc["verifier"]["python"]
    assert basis["bundle_pack"]["version"]  # the author's pack version travels with the bundle
    # Against the reviewer's copy: identical files say so; a changed expectation is listed, and judged.
    mine = tmp_path / "mine"
    shutil.copytree(home, mine)
    res = reviewer("verify", "author.tar.gz", "--expected", mine)
    assert res.returncode == 0 and "identical to the bundle's own expectations" in res.stdout
    exp = mine / "expected" / "local-ablation" / "int6-clip-search.yaml"
    import yaml

    doc = yaml.safe_load(exp.read_text())
    # A smoke-scoped reference the author's run passed: doubled in the reviewer's copy, it must FAIL.
    smoke = [
        e
        for e in doc["expectations"]
        if isinstance(e.get("value"), (int, float))
        and e["value"]
        and "smoke" in str(e.get("scope", {}).get("scale", ""))
        and "tolerance" not in e
    ]
    target = smoke[0]
    target["value"] = target["value"] * 2
    exp.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = reviewer("verify", "author.tar.gz", "--expected", mine)
    assert res.returncode == 1, res.stdout
    assert "expected/local-ablation/int6-clip-search.yaml: differs (bundle " in res.stdout
    assert any("FAIL" in x and f" {target['metric']} " in x for x in res.stdout.splitlines()), res.stdout
    assert "holds no manifests/" in reviewer("verify", "author.tar.gz", "--expected", empty).stderr


def _keypair(tmp_path: Path, name: str) -> Path:
    key = tmp_path / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(key)], check=True
    )
    return key


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_signed_bundle_required_by_trust_and_rehashed_tamper_fails(pack, tmp_path, wheel_site):
    pack("run", "int6-clip-search", check=0)
    author, other = _keypair(tmp_path, "author"), _keypair(tmp_path, "other")
    signed = tmp_path / "signed.tar.gz"
    pack("bundle", "-o", signed, "--sign", author, check=0)
    res = pack("verify", signed, "--trust", f"{author}.pub")
    assert res.returncode == 0 and "signature verified" in res.stderr, res.stderr
    assert "wrong key" in one_error_line(pack("verify", signed, "--trust", f"{other}.pub"))
    unsigned = tmp_path / "unsigned.tar.gz"
    pack("bundle", "-o", unsigned, check=0)
    assert "not signed" in one_error_line(pack("verify", unsigned, "--trust", f"{author}.pub"))
    # Tamper with a value and recompute every checksum consistently (run's and bundle's): without a
    # trust key that is indistinguishable from an honest bundle; with one it is refused.
    import hashlib

    work = tmp_path / "work"
    with tarfile.open(signed) as t:
        t.extractall(work, filter="data")
    (run,) = (work / "runs").glob("*/*/*")
    rj = run / "run.json"
    rj.write_text(rj.read_text().replace('"status": "complete"', '"status": "complete" '))

    def resum(root: Path, names):
        lines = [f"{hashlib.sha256((root / n).read_bytes()).hexdigest()}  {n}\n" for n in sorted(names)]
        (root / "SHA256SUMS").write_text("".join(lines))

    resum(
        run,
        [p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file() and p != run / "SHA256SUMS"],
    )
    names = [
        p.relative_to(work).as_posix()
        for p in work.rglob("*")
        if p.is_file() and p.name not in ("SHA256SUMS.sig",) and p != work / "SHA256SUMS"
    ]
    resum(work, names)
    forged = tmp_path / "forged.tar.gz"
    with tarfile.open(forged, "w:gz") as t:
        for n in ["SHA256SUMS", "SHA256SUMS.sig", *sorted(names)]:
            t.add(work / n, arcname=n, recursive=False)
    assert pack("verify", forged).returncode == 0  # consistent re-hashing fools the checksums alone …
    assert "does not verify" in one_error_line(
        pack("verify", forged, "--trust", f"{author}.pub")
    )  # … not the key
    # The reviewer's side of the "done when": an empty folder, only the wheel, the author's key.
    reviewer = in_empty_folder(wheel_site, tmp_path / "reviewer")
    for f in (signed, forged, Path(f"{author}.pub")):
        shutil.copy(f, tmp_path / "reviewer" / f.name)
    res = reviewer("verify", "signed.tar.gz", "--trust", "author.pub")
    assert res.returncode == 0 and "signature verified" in res.stderr, res.stdout + res.stderr
    assert "judged against the bundle's own expectations" in res.stdout
    assert "does not verify" in one_error_line(reviewer("verify", "forged.tar.gz", "--trust", "author.pub"))
