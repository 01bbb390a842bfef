"""The image matrix as the launchers see it: names, digests, and the checks that keep
docker/<variant>/Dockerfile and docker-bake.hcl in step with manifests/images.yaml.

manifests/images.yaml is the one source of truth. `check_dockerfile` and `check_bake` return a
list of problems (empty when they agree); the tests and `make images` run them before any build.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .. import catalog, paths
from ..errors import LaunchError

REFERENCE_VARIANT = "cu128"  # the pod-default CUDA line of seed 001 (exp0): rows that name no image run here
ENTRYPOINT = "/usr/local/bin/pack-entrypoint"
OCI_LABELS = ("org.opencontainers.image.title", "org.opencontainers.image.source",
              "org.opencontainers.image.revision", "org.opencontainers.image.version",
              "org.opencontainers.image.description")


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
            raise LaunchError(catalog.unknown("image", requested, variants, paths.manifests_dir() / "images.yaml"))
        return requested
    if len(plan_images) > 1:
        raise LaunchError(f"these rows need different images ({', '.join(plan_images)}); one launch runs one image, "
                          f"so launch them separately or pass --image")
    return plan_images[0] if plan_images else REFERENCE_VARIANT


def image_ref(variant: str, remote: bool) -> tuple[str, str | None]:
    """(reference to pull/run, digest or None). A remote machine needs a registry in the name."""
    name = catalog.image_name(variant)
    d = digest(variant)
    if remote:
        repo = name.rsplit(":", 1)[0]
        if "/" not in repo:
            raise LaunchError(f"'{name}' is a local image name that a cloud machine cannot pull; push the images "
                              f"(make images PUSH=1 PACK_IMAGE_PREFIX=ghcr.io/you/ecmoe) and set PACK_IMAGE_PREFIX "
                              f"to that repository")
        return (f"{name}@{d}" if d else name), d
    return name, d


# ---------------------------------------------------------------- Dockerfile / bake checks
_PIN = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*)(\[[\w,-]+\])?==([A-Za-z0-9.+_-]+)")


def _logical_lines(text: str) -> list[str]:
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith("#") and not cur:
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append(cur + line)
        cur = ""
    if cur:
        out.append(cur)
    return out


def dockerfile_facts(path: Path) -> dict:
    """FROM, ARG defaults (expanded), pins `name==version`, install commands, labels, user, entrypoint, cmd."""
    lines = _logical_lines(path.read_text(encoding="utf-8"))
    args: dict[str, str] = {}
    facts: dict = {"from": [], "args": args, "pins": {}, "installs": [], "labels": set(), "user": None,
                   "entrypoint": None, "cmd": None, "env": {}}

    def expand(s: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), s)

    for line in lines:
        word, _, rest = line.strip().partition(" ")
        word = word.upper()
        rest = rest.strip()
        if word == "ARG":
            k, eq, v = rest.partition("=")
            if eq and k.strip() not in args:
                args[k.strip()] = v.strip().strip('"')
        elif word == "FROM":
            facts["from"].append(expand(rest.split(" AS ")[0].split(" as ")[0].strip()))
        elif word == "LABEL":
            facts["labels"].update(m.group(1) for m in re.finditer(r"([\w.-]+)=", rest))
        elif word == "ENV":
            for m in re.finditer(r"(\w+)=(\"[^\"]*\"|\S+)", rest):
                facts["env"][m.group(1)] = m.group(2).strip('"')
        elif word == "USER":
            facts["user"] = expand(rest)
        elif word == "ENTRYPOINT":
            facts["entrypoint"] = _json_or_text(rest)
        elif word == "CMD":
            facts["cmd"] = _json_or_text(rest)
        elif word == "RUN":
            body = expand(rest)
            for cmd in re.split(r"&&|;", body):
                if re.search(r"\b(pip|uv pip)\s+install\b", cmd):
                    facts["installs"].append(cmd.strip())
            for m in _PIN.finditer(body):
                facts["pins"][m.group(1).lower()] = m.group(3)
    return facts


def _json_or_text(s: str):
    try:
        return json.loads(s)
    except ValueError:
        return s


def _unpinned(install_cmd: str) -> list[str]:
    """Requirement tokens of a pip/uv install command that carry no exact version."""
    tokens = install_cmd.replace('"', " ").replace("'", " ").split()
    try:
        start = tokens.index("install") + 1
    except ValueError:
        return []
    bad, skip = [], False
    for t in tokens[start:]:
        if skip:
            skip = False
            continue
        if t.startswith("-"):
            skip = t in ("--index-url", "--extra-index-url", "-c", "--constraint", "-r", "--python", "-p",
                         "--find-links", "-f", "--target", "--no-binary", "--only-binary")
            continue
        if "==" in t or t.startswith(("/", ".", "http")):
            continue
        bad.append(t)
    return bad


def check_dockerfile(path: Path, name: str, v: catalog.ImageVariant) -> list[str]:
    """Problems between docker/<name>/Dockerfile and images.yaml's variant `name`; [] when they agree."""
    f = dockerfile_facts(path)
    where = str(path)
    problems = []
    if f["from"] and f["from"][-1] != v.base:
        problems.append(f"{where}: FROM {f['from'][-1]} but images.yaml variants.{name}.base is {v.base}")
    expect_args = {"VARIANT": name, "PYTHON_VERSION": v.python, "TORCH_VERSION": v.torch,
                   "TORCH_INDEX": v.torch_index, "CUDA_ARCH": v.cuda_arch, "CUDA_VERSION": v.cuda}
    for k, want in expect_args.items():
        if want is None:
            continue
        got = f["args"].get(k)
        if got != want:
            problems.append(f"{where}: ARG {k}={got} but images.yaml variants.{name} says {want}")
    want_pins = {k.lower(): val for k, val in v.packages.items()} | {"torch": v.torch}
    for pkg, ver in want_pins.items():
        got = f["pins"].get(pkg)
        if got is None:
            problems.append(f"{where}: {pkg}=={ver} (images.yaml variants.{name}.packages) is not installed")
        elif got != ver:
            problems.append(f"{where}: installs {pkg}=={got} but images.yaml variants.{name}.packages pins {ver}")
    for pkg, ver in f["pins"].items():
        if pkg not in want_pins:
            problems.append(f"{where}: pins {pkg}=={ver}, which images.yaml variants.{name}.packages does not list")
    for cmd in f["installs"]:
        for t in _unpinned(cmd):
            problems.append(f"{where}: '{t}' is installed without an exact version (pin it in images.yaml)")
    missing = [lab for lab in OCI_LABELS if lab not in f["labels"]]
    if missing:
        problems.append(f"{where}: missing OCI labels {', '.join(missing)}")
    if not f["user"] or f["user"].split(":")[0] in ("root", "0"):
        problems.append(f"{where}: the image must end with a non-root USER")
    ep = f["entrypoint"]
    if ep != [ENTRYPOINT] and ep != ["tini", "--", ENTRYPOINT] and ep != ["/usr/bin/tini", "--", ENTRYPOINT]:
        problems.append(f"{where}: ENTRYPOINT must run {ENTRYPOINT} (so `docker run IMAGE pack run …` works), got {ep}")
    if f["cmd"] != ["pack", "--help"]:
        problems.append(f"{where}: CMD must be [\"pack\", \"--help\"], got {f['cmd']}")
    for k in ("PACK_IMAGE", "PACK_IMAGE_VARIANT", "PACK_HOME"):
        if k not in f["env"]:
            problems.append(f"{where}: ENV {k} is not set (provenance records the image from it)")
    return problems


def check_all_dockerfiles(root: Path | None = None) -> list[str]:
    root = root or paths.project_root()
    problems = []
    for name, v in catalog.images().variants.items():
        path = root / "docker" / name / "Dockerfile"
        if not path.is_file():
            problems.append(f"{path}: missing (images.yaml lists variant '{name}')")
            continue
        problems += check_dockerfile(path, name, v)
    return problems


def _first(v):
    """python-hcl2 wraps some values in lists and keeps string quotes; unwrap both."""
    while isinstance(v, list) and len(v) == 1 and not isinstance(v[0], str):
        v = v[0]
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        v = v[1:-1]
    return v


def bake_targets(path: Path) -> tuple[dict, dict, dict]:
    """(targets by name, groups by name, variables by name) from docker-bake.hcl."""
    import hcl2

    with open(path, encoding="utf-8") as fh:
        doc = hcl2.load(fh)

    def blocks(kind: str) -> dict:
        out = {}
        for item in doc.get(kind, []):
            for name, body in item.items():
                out[_first(name)] = _first(body)
        return out

    return blocks("target"), blocks("group"), blocks("variable")


def check_bake(path: Path | None = None) -> list[str]:
    """Problems between docker-bake.hcl and images.yaml: one target per variant, same args and tags."""
    path = path or paths.project_root() / "docker-bake.hcl"
    targets, groups, variables = bake_targets(path)
    problems = []
    cat = catalog.images()
    prefix_default = _first((variables.get("PREFIX") or {}).get("default"))
    if prefix_default != cat.prefix:
        problems.append(f"{path}: variable PREFIX defaults to {prefix_default!r}, images.yaml prefix is {cat.prefix!r}")
    default = [_first(t) for t in (groups.get("default") or {}).get("targets", [])]
    if sorted(default) != sorted(cat.variants):
        problems.append(f"{path}: group default builds {sorted(default)}, images.yaml has {sorted(cat.variants)}")
    for name, v in cat.variants.items():
        t = targets.get(name)
        if not t:
            problems.append(f"{path}: no target '{name}' (images.yaml lists it)")
            continue
        if _first(t.get("dockerfile")) != f"docker/{name}/Dockerfile":
            problems.append(f"{path}: target {name} builds {_first(t.get('dockerfile'))}, expected docker/{name}/Dockerfile")
        tags = [_first(x) for x in t.get("tags", [])]
        if f"${{PREFIX}}:{name}" not in tags:
            problems.append(f"{path}: target {name} is not tagged ${{PREFIX}}:{name} (tags: {tags})")
        args = {k: _first(val) for k, val in (t.get("args") or {}).items()}
        for k, want in {"VARIANT": name, "TORCH_VERSION": v.torch, "PYTHON_VERSION": v.python,
                        "CUDA_ARCH": v.cuda_arch, "TORCH_INDEX": v.torch_index, "CUDA_VERSION": v.cuda,
                        "IMAGE_NAME": f"${{PREFIX}}:{name}"}.items():
            if args.get(k) != want:
                problems.append(f"{path}: target {name} passes {k}={args.get(k)!r}, images.yaml says {want!r}")
    extra = sorted(set(targets) - set(cat.variants) - {"_common"})
    if extra:
        problems.append(f"{path}: targets {extra} are not variants in images.yaml")
    return problems
