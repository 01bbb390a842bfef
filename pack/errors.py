"""One error tree, caught once at the CLI.

Every error a user can cause is a PackError carrying one readable sentence and an exit code.
Exit codes: 0 all pass, 1 a row failed, 2 usage or manifest error, 3 crash or launch failure.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CRASH = 3


class PackError(Exception):
    """A problem the user can fix; `str(err)` is the sentence shown to them."""

    exit_code = EXIT_USAGE


class UsageError(PackError):
    exit_code = EXIT_USAGE


class ManifestError(PackError):
    """One or more problems in a manifest, expected or catalogue file (all collected)."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0])
        else:
            body = "\n".join(f"  - {p}" for p in self.problems)
            super().__init__(f"{len(self.problems)} problems found:\n{body}")


class NotRunnableHere(PackError):
    """The row needs hardware this machine lacks; nothing was written."""

    exit_code = EXIT_USAGE


class IntegrityError(PackError):
    """A run directory or bundle does not match its checksums, or is truncated."""

    exit_code = EXIT_FAILED


class BundleError(PackError):
    """A bundle that cannot be read to its end, is unsafe to extract, or breaks a cap: nothing is judged."""

    exit_code = EXIT_USAGE


class MissingExtra(PackError):
    """A backend's optional dependency is not installed."""

    exit_code = EXIT_USAGE

    def __init__(self, module: str, extra: str, purpose: str = ""):
        why = f" for {purpose}" if purpose else ""
        super().__init__(
            f"the Python package '{module}' is needed{why} but is not installed; "
            f"install it with: pip install 'pack-repro[{extra}]'"
        )


class LaunchError(PackError):
    exit_code = EXIT_CRASH


def require(module: str, extra: str, purpose: str = ""):
    """Import a heavy optional module, or raise MissingExtra naming the pip extra that brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # only the module itself missing is the user's fix
        if e.name and module.split(".")[0] != e.name.split(".")[0]:
            raise
        raise MissingExtra(module, extra, purpose) from None


class MissingInput(PackError):
    """An input file a row names (a dataset, a checkpoint) is not there; `how` says how to get it."""

    exit_code = EXIT_USAGE

    def __init__(self, path, how: str):
        self.path = path
        super().__init__(f"input file {path} not found; {how}")


class FilesystemError(PackError):
    """Disk full, a read-only folder, a file where a folder must be (or the reverse): the path and the fix."""

    exit_code = EXIT_USAGE

    def __init__(self, err: OSError, hint: str = ""):
        self.errno = err.errno
        super().__init__(os_error_sentence(err) + (f"; {hint}" if hint else ""))


def _os_faults() -> dict[int, str]:
    import errno

    # The machine, not the pack: what is wrong and the fix, per errno. The runner and the CLI's last-resort
    # handler both read this one table.
    return {
        errno.ENOSPC: "no space left on the device (disk full); free space and run the command again "
        "(finished repetitions are kept; --resume continues)",
        errno.EDQUOT: "disk quota exceeded; free space and run the command again",
        errno.EROFS: "the file system is read-only; use a writable folder (--out DIR or PACK_RUNS)",
        errno.EACCES: "permission denied; use a folder you can write to (--out DIR or PACK_RUNS)",
        errno.EPERM: "operation not permitted; use a folder you can write to (--out DIR or PACK_RUNS)",
        errno.ENOTDIR: "a file is where a folder is expected; move the file away or choose another path",
        errno.EISDIR: "a folder is where a file is expected; move the folder away or choose another path",
        errno.ENOENT: "no such file or directory",
        errno.EEXIST: "already exists and is not a folder; move it away or choose another path",
    }


OS_FAULTS = _os_faults()


def os_error_sentence(err: OSError) -> str:
    """One sentence for an operating-system error: the path first, then what is wrong and the fix."""
    path = err.filename if err.filename is not None else "?"
    if err.filename2 is not None:
        path = f"{err.filename} -> {err.filename2}"
    return f"{path}: {OS_FAULTS.get(err.errno, err.strerror or type(err).__name__)}"
