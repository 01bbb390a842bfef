"""Where a detached launch leaves its results and its status, so the client can reattach.

    <results>/status.json    {"state": booting|running|finished|expired, "at", "exit_code", "detail"}
    <results>/runs/...       the runs tree `pack run --out` wrote (paper/row/run-id/...)
    <results>/launch.log     the machine's own log (EC2 user-data, pod agent)

`s3://bucket/prefix` goes through boto3 (PACK_S3_ENDPOINT_URL for an S3-compatible store);
`file:///path` is a local folder (local docker launches, tests).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

from ..errors import LaunchError


class _DirTransfer:
    """Whole-folder upload/download on top of a sink's one-file moves (_put_file / _get_file)."""

    def upload_dir(self, local: Path, prefix: str) -> int:
        files = [p for p in sorted(local.rglob("*")) if p.is_file()]
        for p in files:
            self._put_file(p, f"{prefix}/{p.relative_to(local)}")
        return len(files)

    def download_dir(self, prefix: str, local: Path) -> int:
        keys = self.keys(prefix)
        for key in keys:
            dest = local / Path(key).relative_to(prefix)
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._get_file(key, dest)
        return len(keys)


class FileSink(_DirTransfer):
    def __init__(self, root: Path):
        self.root = root
        self.uri = root.as_uri()

    def put_bytes(self, key: str, data: bytes) -> None:
        p = self.root / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def get_bytes(self, key: str) -> bytes | None:
        p = self.root / key
        return p.read_bytes() if p.is_file() else None

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    def _put_file(self, path: Path, key: str) -> None:
        self.put_bytes(key, path.read_bytes())

    def _get_file(self, key: str, dest: Path) -> None:
        shutil.copyfile(self.root / key, dest)


class S3Sink(_DirTransfer):
    def __init__(self, bucket: str, prefix: str, session=None):
        from ..errors import require

        boto3 = require("boto3", "cloud", "S3 results")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}"
        session = session or boto3.Session()
        self.s3 = session.client("s3", endpoint_url=os.environ.get("PACK_S3_ENDPOINT_URL") or None)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise LaunchError(f"could not read {self.uri}/{key}: {e}") from None

    def keys(self, prefix: str) -> list[str]:
        out = []
        full = self._key(prefix).rstrip("/") + "/"
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                out.append(obj["Key"][len(self.prefix) + 1 :] if self.prefix else obj["Key"])
        return sorted(out)

    def _put_file(self, path: Path, key: str) -> None:
        self.s3.upload_file(str(path), self.bucket, self._key(key))

    def _get_file(self, key: str, dest: Path) -> None:
        self.s3.download_file(self.bucket, self._key(key), str(dest))


def open_sink(uri: str, session=None):
    u = urlparse(uri)
    if u.scheme == "s3":
        if not u.netloc:
            raise LaunchError(f"results location '{uri}' has no bucket; use s3://bucket/prefix")
        return S3Sink(u.netloc, u.path, session=session)
    if u.scheme == "file":
        return FileSink(Path(u.path))
    raise LaunchError(f"results location '{uri}' is neither s3://bucket/prefix nor file:///path")


def fetch_into(sink, launch_id: str, dest: Path) -> int:
    """Copy a launch's runs (and its remote log, as launches/<id>.log) from the sink into dest.

    Returns the number of run files fetched.
    """
    n = sink.download_dir("runs", dest)
    log = sink.get_bytes("launch.log")
    if log is not None:
        (dest / "launches").mkdir(parents=True, exist_ok=True)
        (dest / "launches" / f"{launch_id}.log").write_bytes(log)
    return n


def read_status(sink) -> dict | None:
    raw = sink.get_bytes("status.json")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"state": "unknown", "detail": "status.json is not JSON"}


def write_status(sink, state: str, **fields) -> None:
    from .ledger import now_iso

    sink.put_bytes("status.json", json.dumps({"state": state, "at": now_iso(), **fields}).encode())


def count_reps(keys: list[str]) -> int:
    """Finished repetitions among result keys (the run folder's layout is rundir's)."""
    from ..rundir import is_finished_rep_key

    return sum(1 for k in keys if is_finished_rep_key(k))
