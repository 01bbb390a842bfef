"""The files generated from manifests/images.yaml: each variant's Dockerfile, requirements.in and the
header of its requirements.lock, docker/bootstrap.in, and docker-bake.hcl.

`render_all()` returns {relative path: text}; `pack launch images --write` writes them and
`check_generated()` (the tests, `pack launch images --check`) reports every file that differs.
`lock()` runs `uv pip compile --generate-hashes` per variant (`make lock`). What the four images
share lives once, in docker/build-env.sh, which every Dockerfile runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from .. import catalog, paths
from ..errors import LaunchError

ENTRYPOINT = "/usr/local/bin/pack-entrypoint"
PYPI = "https://pypi.org/simple"
LOCK_PLATFORM = "x86_64-manylinux_2_35"  # glibc of the ubuntu22.04 bases (Debian bookworm's 2.36 runs it too)
# What a lock made without PyTorch's index leaves out: torch and the CUDA wheels it pulls in.
TORCH_CLOSURE = re.compile(r"^(torch|triton|nvidia-[a-z0-9-]+-cu\d+)==")
GENERATED = "GENERATED from manifests/images.yaml by `pack launch images --write`; do not edit."


def _oneline(s: str) -> str:
    return " ".join(s.split())


def requirements_in(name: str, v: catalog.ImageVariant) -> str:
    lines = [
        f"# docker/{name}/requirements.in: {GENERATED}",
        "# `make lock` resolves it into requirements.lock.",
    ]
    lines += [f"{pkg}=={ver}" for pkg, ver in v.packages.items()]
    return "\n".join(lines) + "\n"


def _inputs_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lock_header(name: str, v: catalog.ImageVariant, torch_locked: bool) -> str:
    """The lock's first lines: what it was resolved from and against. The test recomputes them."""
    inputs = requirements_in(name, v)
    torch_line = (
        f"# torch {v.torch} resolved against PyPI (its manylinux wheel is this CUDA {v.cuda} build)."
        if torch_locked and v.torch_on_pypi
        else f"# torch {v.torch} and its CUDA wheels resolved against PyPI + {v.torch_index}."
        if torch_locked
        else f"# torch {v.torch} and its CUDA wheels (torch, triton, nvidia-*) are NOT in this lock: "
        "it was made\n"
        f"# where only PyPI was reachable, and the CUDA {v.cuda} build of torch lives on {v.torch_index}.\n"
        f"# The build installs torch=={v.torch} from that index (unhashed). Where the index is\n"
        f"# reachable, `make lock LOCK_VARIANTS={name}` locks them too."
    )
    return (
        "\n".join(
            [
                f"# docker/{name}/requirements.lock: every package of {catalog.images().prefix}:{name} "
                "except the pack,",
                "# pinned with hashes (uv pip compile --generate-hashes). "
                "Regenerate: make lock LOCK_VARIANTS=" + name,
                f"# inputs: docker/{name}/requirements.in sha256:{_inputs_sha(inputs)} "
                "(from manifests/images.yaml)",
                f"# python {v.python}, {LOCK_PLATFORM}",
                torch_line,
            ]
        )
        + "\n"
    )


def bootstrap_in() -> str:
    return f"# docker/bootstrap.in: {GENERATED}\nuv=={catalog.images().uv}\n"


def dockerfile(name: str, v: catalog.ImageVariant) -> str:
    image = f"{catalog.images().prefix}:{name}"
    desc = _oneline(v.description).replace('"', "'")
    return f"""# syntax=docker/dockerfile:1.7
# {image}: {desc}
# {GENERATED}
# What every image shares (OS packages, Python, the locked environment, the pack, pip check) is
# docker/build-env.sh. Build: `make images` (users, nvidia/cuda base) or `make images-local` (podman).
ARG BASE_IMAGE={v.base}
FROM ${{BASE_IMAGE}}

ARG BASE_IMAGE
ARG VARIANT={name}
ARG IMAGE_NAME={image}
ARG PACK_VERSION=0.1.0
ARG SOURCE_URL=unknown
ARG CUDA_VERSION={v.cuda}
ARG PYTHON_VERSION={v.python}
ARG TORCH_VERSION={v.torch}
ARG TORCH_INDEX={v.torch_index}
ARG CUDA_ARCH="{v.cuda_arch}"
ARG COMPILE_FROM_SOURCE="{" ".join(v.compile_from_source)}"
ARG PACK_EXTRAS="{",".join(v.pack_extras)}"
# uv: Python {v.python} from the pinned uv (python-build-standalone); system: the base's python3 (Debian base).
ARG PYTHON_SOURCE=uv
# Packages of COMPILE_FROM_SOURCE not built (no CUDA toolkit in the base); the image records them.
ARG SKIP_COMPILE=""
# 0: no uv download cache (halves the disk a build needs; make images-local sets it).
ARG UV_CACHE=1

LABEL org.opencontainers.image.title="${{IMAGE_NAME}}" \\
      org.opencontainers.image.description="{desc}" \\
      org.opencontainers.image.source="${{SOURCE_URL}}" \\
      org.opencontainers.image.version="${{PACK_VERSION}}" \\
      org.opencontainers.image.licenses="Apache-2.0" \\
      org.opencontainers.image.base.name="${{BASE_IMAGE}}" \\
      io.github.pack.variant="${{VARIANT}}" \\
      io.github.pack.skipped="${{SKIP_COMPILE}}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The image's own name and variant are in the environment, so every run's provenance records them.
ENV DEBIAN_FRONTEND=noninteractive \\
    PACK_IMAGE=${{IMAGE_NAME}} \\
    PACK_IMAGE_VARIANT=${{VARIANT}} \\
    PACK_IMAGE_SKIPPED=${{SKIP_COMPILE}} \\
    PACK_HOME=/opt/pack \\
    PACK_RUNS=/runs \\
    UV_PYTHON_INSTALL_DIR=/opt/python \\
    UV_LINK_MODE=copy \\
    VIRTUAL_ENV=/opt/venv \\
    PATH=/opt/venv/bin:${{PATH}} \\
    TORCH_CUDA_ARCH_LIST=${{CUDA_ARCH}} \\
    HF_HOME=/home/pack/.cache/huggingface

# The locked environment first: torch and its CUDA wheels, then the rest (separate layers on purpose:
# the largest layer changes least, and a build needs less disk per layer), then the pack.
COPY docker/build-env.sh docker/bootstrap.lock /usr/local/lib/pack-build/
COPY docker/{name}/requirements.lock /usr/local/lib/pack-build/requirements.lock
RUN --mount=type=cache,target=/root/.cache/uv /usr/local/lib/pack-build/build-env.sh environment
# hadolint ignore=DL3059
RUN --mount=type=cache,target=/root/.cache/uv /usr/local/lib/pack-build/build-env.sh packages

# The revision last, so a new commit rebuilds only the pack's layers, not the environment.
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.revision="${{GIT_SHA}}"
ENV PACK_GIT_SHA=${{GIT_SHA}}
COPY . /opt/pack
COPY docker/entrypoint.sh {ENTRYPOINT}
RUN /usr/local/lib/pack-build/build-env.sh pack

USER 1000:1000
WORKDIR /home/pack

# `docker run IMAGE pack run exp6a` runs exactly `pack run exp6a` under the row watchdog.
ENTRYPOINT ["/usr/bin/tini", "--", "{ENTRYPOINT}"]
CMD ["pack", "--help"]
"""


def bake() -> str:
    cat = catalog.images()
    out = [
        f"// {GENERATED}",
        "// `make images` runs `docker buildx bake --metadata-file build/images-metadata.json`, "
        "so the digest",
        "// of every image lands in that file (pack launch pins images to it).",
        "",
    ]
    for var, default in (
        ("PREFIX", cat.prefix),
        ("GIT_SHA", "unknown"),
        ("PACK_VERSION", "0.1.0"),
        ("SOURCE_URL", "unknown"),
    ):
        out += [f'variable "{var}" {{', f'  default = "{default}"', "}", ""]
    out += [
        'group "default" {',
        f"  targets = [{', '.join(repr(n).replace(chr(39), chr(34)) for n in cat.variants)}]",
        "}",
        "",
        'target "_common" {',
        '  context   = "."',
        '  platforms = ["linux/amd64"]',
        "  args = {",
        '    GIT_SHA      = "${GIT_SHA}"',
        '    PACK_VERSION = "${PACK_VERSION}"',
        '    SOURCE_URL   = "${SOURCE_URL}"',
        "  }",
        "  labels = {",
        '    "org.opencontainers.image.revision" = "${GIT_SHA}"',
        "  }",
        "}",
    ]
    for name, v in cat.variants.items():
        args = {
            "VARIANT": name,
            "IMAGE_NAME": f"${{PREFIX}}:{name}",
            "BASE_IMAGE": v.base,
            "CUDA_VERSION": v.cuda,
            "PYTHON_VERSION": v.python,
            "TORCH_VERSION": v.torch,
            "TORCH_INDEX": v.torch_index,
            "CUDA_ARCH": v.cuda_arch,
        }
        out += [
            "",
            f'target "{name}" {{',
            '  inherits   = ["_common"]',
            f'  dockerfile = "docker/{name}/Dockerfile"',
            f'  tags       = ["${{PREFIX}}:{name}"]',
            "  args = {",
        ]
        out += [f'    {k:<14} = "{val}"' for k, val in args.items()]
        out += ["  }", "}"]
    return "\n".join(out) + "\n"


def render_all() -> dict[str, str]:
    """{path relative to the project root: text} for every generated file except the locks' bodies."""
    files = {"docker-bake.hcl": bake(), "docker/bootstrap.in": bootstrap_in()}
    for name, v in catalog.images().variants.items():
        files[f"docker/{name}/Dockerfile"] = dockerfile(name, v)
        files[f"docker/{name}/requirements.in"] = requirements_in(name, v)
    return files


def split_lock(text: str) -> tuple[str, str]:
    """(header: the leading comment lines, body: the rest)."""
    lines = text.splitlines(keepends=True)
    n = 0
    while n < len(lines) and lines[n].startswith("#"):
        n += 1
    return "".join(lines[:n]), "".join(lines[n:])


def locked_versions(body: str) -> dict[str, str]:
    out = {}
    for line in body.splitlines():
        if line and not line[0].isspace() and "==" in line and not line.startswith("#"):
            pkg, _, rest = line.partition("==")
            out[pkg.strip().lower()] = rest.split()[0].rstrip("\\").strip()
    return out


def check_generated(root: Path | None = None) -> list[str]:
    """Every generated file, and every lock's header, that differs from what images.yaml gives."""
    root = root or paths.project_root()
    problems = []
    for rel, want in render_all().items():
        f = root / rel
        got = f.read_text(encoding="utf-8") if f.is_file() else None
        if got != want:
            problems.append(
                f"{f}: {'missing' if got is None else 'differs from'} what manifests/images.yaml "
                f"generates; run `pack launch images --write`"
            )
    for name, v in catalog.images().variants.items():
        f = root / "docker" / name / "requirements.lock"
        if not f.is_file():
            problems.append(f"{f}: missing; run `make lock LOCK_VARIANTS={name}`")
            continue
        header, body = split_lock(f.read_text(encoding="utf-8"))
        pins = locked_versions(body)
        if header != lock_header(name, v, "torch" in pins):
            problems.append(
                f"{f}: its header is not what manifests/images.yaml (variants.{name}) gives; "
                f"run `make lock LOCK_VARIANTS={name}`"
            )
        for pkg, ver in v.packages.items():
            got = pins.get(pkg.lower())
            if got is None and not (pkg == "torch" and not v.torch_on_pypi):
                problems.append(
                    f"{f}: {pkg}=={ver} (images.yaml variants.{name}.packages) is not in the lock"
                )
            elif got is not None and got.split("+")[0] != ver:
                problems.append(
                    f"{f}: locks {pkg}=={got} but images.yaml variants.{name}.packages pins {ver}"
                )
    boot = root / "docker" / "bootstrap.lock"
    if f"uv=={catalog.images().uv} " not in (boot.read_text() if boot.is_file() else ""):
        problems.append(f"{boot}: does not lock uv=={catalog.images().uv}; run `make lock`")
    return problems


def write_generated(root: Path | None = None) -> list[Path]:
    root = root or paths.project_root()
    written = []
    for rel, text in render_all().items():
        f = root / rel
        if not f.is_file() or f.read_text(encoding="utf-8") != text:
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text, encoding="utf-8")
            written.append(f)
    return written


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=20) as r:
            return r.status == 200
    except OSError:
        return False


def _uv() -> str:
    import shutil
    import sys

    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        raise LaunchError("`uv` is not installed; `pip install uv==" + catalog.images().uv + "` (from PyPI)")
    return found


def _compile(src: Path, out: Path, extra: list[str], log) -> None:
    env = dict(os.environ, UV_SYSTEM_CERTS="1")
    argv = [
        _uv(),
        "pip",
        "compile",
        str(src),
        "--generate-hashes",
        "--python-version",
        "3.11",
        "--python-platform",
        LOCK_PLATFORM,
        "--no-header",
        "--index-url",
        PYPI,
        "-o",
        str(out),
        *extra,
    ]
    log(" ".join(argv))
    res = subprocess.run(argv, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise LaunchError(f"uv pip compile {src} failed: {res.stderr.strip()[-2000:]}")


def _drop_torch_closure(body: str) -> str:
    out, skipping = [], False
    for line in body.splitlines(keepends=True):
        if line and not line[0].isspace():
            skipping = bool(TORCH_CLOSURE.match(line))
        if not skipping:
            out.append(line)
    return "".join(out)


def lock(variants: list[str] | None = None, root: Path | None = None, log=print) -> list[Path]:
    """Resolve each variant's requirements.in into requirements.lock (and docker/bootstrap.lock)."""
    root = root or paths.project_root()
    write_generated(root)
    cat = catalog.images()
    names = variants or list(cat.variants)
    for n in names:
        if n not in cat.variants:
            raise LaunchError(
                catalog.unknown("image", n, cat.variants, paths.manifests_dir() / "images.yaml")
            )
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        boot = root / "docker" / "bootstrap.lock"
        _compile(root / "docker" / "bootstrap.in", boot, [], log)
        written.append(boot)
        for name in names:
            v = cat.variants[name]
            extra, torch_locked = [], True
            if not v.torch_on_pypi:
                if _reachable(v.torch_index):
                    extra = ["--extra-index-url", v.torch_index, "--index-strategy", "unsafe-best-match"]
                else:
                    torch_locked = False
                    log(f"{v.torch_index} is unreachable: {name}'s lock leaves torch and its CUDA wheels out")
            out = Path(tmp) / f"{name}.lock"
            _compile(root / "docker" / name / "requirements.in", out, extra, log)
            body = out.read_text(encoding="utf-8")
            if not torch_locked:
                body = _drop_torch_closure(body)
            f = root / "docker" / name / "requirements.lock"
            f.write_text(lock_header(name, v, torch_locked) + body, encoding="utf-8")
            written.append(f)
    return written
