"""The image matrix as the launchers see it: names, digests, the container CLI, and the check
that the files generated from manifests/images.yaml (pack/launch/image_files.py) are current.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from .. import catalog, paths
from ..errors import LaunchError

REFERENCE_VARIANT = "cu128"  # the pod-default CUDA line of seed 001 (exp0): rows that name no image run here
CLI_HINT = (
    "install Docker Engine or podman (with the NVIDIA Container Toolkit for GPU rows), set "
    "PACK_CONTAINER_CLI to the one to use, or launch without --image"
)


def container_cli() -> list[str]:
    """The container CLI as argv: PACK_CONTAINER_CLI (`podman --runtime runc`), else docker, else podman."""
    from . import shell

    env = os.environ.get("PACK_CONTAINER_CLI", "").strip()
    if env:
        return shlex.split(env)
    for cli in ("docker", "podman"):
        if shell.which(cli):
            return [cli]
    return ["docker"]


def container_run_args() -> list[str]:
    """Extra `run` options for this machine (PACK_CONTAINER_RUN_ARGS, e.g. ulimits podman needs here)."""
    return shlex.split(os.environ.get("PACK_CONTAINER_RUN_ARGS", ""))


def metadata_file() -> Path:
    env = os.environ.get("PACK_IMAGES_METADATA")
    return Path(env) if env else paths.project_root() / "build" / "images-metadata.json"


def digest(variant: str) -> str | None:
    """The digest `docker buildx bake --metadata-file` recorded for VARIANT, if any."""
    f = metadata_file()
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    entry = data.get(variant) or {}
    d = entry.get("containerimage.digest")
    return d if isinstance(d, str) and d.startswith("sha256:") else None


def choose_variant(plan_images: list[str], requested: str | None) -> str:
    """The one image variant a launch runs in: --image, else the rows' own, else the reference line."""
    variants = catalog.images().variants
    if requested:
        if requested not in variants:
            raise LaunchError(
                catalog.unknown("image", requested, variants, paths.manifests_dir() / "images.yaml")
            )
        return requested
    if len(plan_images) > 1:
        raise LaunchError(
            f"these rows need different images ({', '.join(plan_images)}); one launch runs one image, "
            f"so launch them separately or pass --image"
        )
    return plan_images[0] if plan_images else REFERENCE_VARIANT


def image_ref(variant: str, remote: bool) -> tuple[str, str | None]:
    """(reference to pull/run, digest or None). A remote machine needs a registry in the name."""
    name = catalog.image_name(variant)
    d = digest(variant)
    if remote:
        repo = name.rsplit(":", 1)[0]
        if "/" not in repo:
            raise LaunchError(
                f"'{name}' is a local image name that a cloud machine cannot pull; push the images "
                f"(make images PUSH=1 PACK_IMAGE_PREFIX=ghcr.io/you/ecmoe) and set PACK_IMAGE_PREFIX "
                f"to that repository"
            )
        return (f"{name}@{d}" if d else name), d
    return name, d


# ---------------------------------------------------------------- generated files
def check_all() -> list[str]:
    """Problems between images.yaml and the files generated from it ([] when they agree)."""
    from . import image_files

    return image_files.check_generated()
