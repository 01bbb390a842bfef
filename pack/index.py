"""A cached index of rows for `pack list`, so listing needs neither yaml nor pydantic.

The cache (.pack-cache/index.json) is keyed by the size and mtime of every manifest file; any
change rebuilds it through the full validating loader. A manifest that does not load is kept in
the index as broken (file and problems), so listing one paper still works and names the file.
"""

from __future__ import annotations

import json
import os

from . import paths

INDEX_VERSION = 3


def _stamp() -> list:
    d = paths.manifests_dir()
    out = []
    for name in sorted(os.listdir(d)) if d.is_dir() else []:
        if name.endswith(".yaml"):
            st = os.stat(d / name)
            out.append([name, st.st_size, st.st_mtime_ns])
    return out


def rows_index() -> tuple[list[dict], dict[str, list[str]]]:
    """(rows of every manifest that loads, {broken manifest file: its problems})."""
    cache = paths.cache_dir() / "index.json"
    stamp = _stamp()
    try:
        data = json.loads(cache.read_text())
        if data.get("version") == INDEX_VERSION and data.get("stamp") == stamp:
            return data["rows"], data["broken"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no cache, or one this version did not write: rebuild
    rows, broken = _build()
    try:
        from .fsio import write_json_atomic

        write_json_atomic(cache, {"version": INDEX_VERSION, "stamp": stamp, "rows": rows, "broken": broken})
    except OSError:
        pass  # a read-only checkout (inside an image) still lists, just without the cache
    return rows, broken


def _build() -> tuple[list[dict], dict[str, list[str]]]:
    from .manifest import load_all

    manifests, broken = load_all()
    out = []
    for m in manifests:
        for r in m.rows:
            scales = {s: r.at(s) for s in ("smoke", "full")}
            out.append(
                {
                    "paper": m.paper,
                    "row": r.id,
                    "experiment": r.experiment,
                    "cell": r.cell,
                    "reps": r.reps,
                    "tags": r.tags,
                    "scales": {
                        s: {
                            "hardware": rr.target.hardware,
                            "image": rr.target.image,
                            "runtime_estimate_s": rr.runtime_estimate_s,
                            "reps": rr.reps,
                        }
                        for s, rr in scales.items()
                        if s in r.scales or s == "full"
                    },
                }
            )
    return out, {str(f): problems for f, problems in broken.items()}


def skipping(f, problems: list[str]) -> str:
    """The one-line warning for a broken manifest that is left out (its first problem, and how many more)."""
    more = f" (and {len(problems) - 1} more; run 'pack validate')" if len(problems) > 1 else ""
    return f"skipping {f}: {problems[0]}{more}"
