"""`pack verify` on a run with >= 200 MB of artifacts against `sha256sum` of the same files.

Target (issue 2): verify at most 2x sha256sum's time. The run is a real `command` row whose
script prints ~20 MB per repetition (kept as its stdout artifact), 10 repetitions.
    python bench/verify_throughput.py [--mb 200] [--n 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, machine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--n", type=int, default=5)
    args = ap.parse_args()
    reps = 10
    tmp = Path(tempfile.mkdtemp(prefix="pack-bench-"))
    try:
        home = tmp / "home"
        shutil.copytree(REPO / "manifests", home / "manifests")
        (home / "expected").mkdir()
        (tmp / "spew.py").write_text(
            textwrap.dedent(f"""
            import os, sys
            chunk = os.urandom(1 << 20).hex()[: 1 << 20]
            for _ in range({args.mb // reps}):
                sys.stdout.write(chunk + "\\n")
            print("VALUE 1.0")
        """)
        )
        (home / "manifests" / "bench.yaml").write_text(
            textwrap.dedent(f"""
            paper: bench
            title: verify throughput bench
            source: bench/verify_throughput.py
            rows:
              - id: big
                cell: none
                experiment: command
                target: {{hardware: cpu}}
                reps: {reps}
                params:
                  script: spew.py
                  repo: {tmp}
                  interpreter: python3
                  parsers: [{{name: value, regex: 'VALUE (?P<value>[\\d.]+)'}}]
        """)
        )
        env = dict(os.environ, PYTHONPATH=str(REPO), PACK_HOME=str(home), PACK_RUNS=str(tmp / "runs"))
        subprocess.run(
            [sys.executable, "-m", "pack", "run", "big"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        run = next((tmp / "runs" / "bench" / "big").iterdir())
        files = [str(p) for p in run.rglob("*") if p.is_file() and p.name != "SHA256SUMS"]
        total = sum(os.path.getsize(f) for f in files)
        med = interleaved(
            {
                "sha256sum": ["sha256sum", *files],
                "pack verify": [sys.executable, "-m", "pack", "verify", str(run)],
            },
            args.n,
            env=env,
        )
        ratio = med["pack verify"] / med["sha256sum"]
        print(f"machine: {machine()}  (median of {args.n}, interleaved, warm page cache)")
        print(f"run: {len(files)} files, {total / 1e6:.0f} MB")
        for k, v in med.items():
            print(f"{k:<12} {v:7.3f} s   {total / 1e6 / v:7.0f} MB/s")
        print(f"RESULT verify_vs_sha256sum={ratio:.2f} target<=2.0 {'OK' if ratio <= 2 else 'OVER'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
