"""The run folder's writer lock: one pack process runs or resumes a folder at a time (an exclusive
`flock` on its `.pack.lock`, which holds the writer's pid so the refusal can name it)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import EXIT_USAGE, PackError


class RunInUse(PackError):
    """Another pack process holds the run folder's lock."""

    exit_code = EXIT_USAGE


def _lock_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def hold(lock_path: Path, folder: Path) -> Iterator[None]:
    """Hold the exclusive lock for a run or resume of `folder`; RunInUse if another process holds it.
    The kernel drops the lock when the process dies, so a SIGKILLed run never blocks its resume."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _lock_pid(fd)
            who = f" (pid {pid})" if pid else ""
            raise RunInUse(
                f"{folder} is being run by another pack process{who}; "
                "wait for it to finish, or stop it and continue with --resume"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing drops the lock


def holder(lock_path: Path) -> int | None:
    """The pid of the pack process holding the lock right now (0 if unknown), or None."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _lock_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
