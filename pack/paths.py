"""Where things live. The project root holds manifests/ and expected/; runs default to ./runs.

`PACK_HOME` points at a checkout (or any folder with manifests/ and expected/) when the pack is
used from elsewhere, e.g. inside a container where the repository is copied to /opt/pack.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from .errors import UsageError

_ROOT: ContextVar[Path | None] = ContextVar("pack_root", default=None)


@contextmanager
def using_root(root: Path):
    """Read manifests/ and expected/ from `root` for a while (a bundle's own copy): beats PACK_HOME."""
    token = _ROOT.set(Path(root).resolve())
    try:
        yield
    finally:
        _ROOT.reset(token)


def project_root() -> Path:
    if (override := _ROOT.get()) is not None:
        return override
    env = os.environ.get("PACK_HOME")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise UsageError(
                f"PACK_HOME={env} {what}; point it at a checkout of the pack (a folder with "
                f"manifests/ and expected/) or unset it"
            )
        return root.resolve()
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "manifests" / "hardware.yaml").is_file():
            return p
    # Installed from a checkout: the package sits next to manifests/.
    return Path(__file__).resolve().parent.parent


def where_from() -> str:
    """How the project root was found, for error messages."""
    env = os.environ.get("PACK_HOME")
    return f"PACK_HOME={env}" if env else f"found from {Path.cwd()}"


def manifests_dir() -> Path:
    return project_root() / "manifests"


def expected_dir() -> Path:
    return project_root() / "expected"


def runs_dir() -> Path:
    env = os.environ.get("PACK_RUNS")
    return Path(env).resolve() if env else Path.cwd().resolve() / "runs"


def cache_dir() -> Path:
    return project_root() / ".pack-cache"
