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
