"""CLI start-up: `pack list` and `pack verify --help` against `python -c pass`, same run.

Target (issue 2): under 4x. Prints the medians and the ratios.
    python bench/startup.py [--n 15]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, machine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=15)
    n = ap.parse_args().n
    env = dict(os.environ, PYTHONPATH=str(REPO), PACK_HOME=str(REPO))
    py = sys.executable
    med = interleaved(
        {
            "python -c pass": [py, "-c", "pass"],
            "pack list": [py, "-m", "pack", "list"],
            "pack verify --help": [py, "-m", "pack", "verify", "--help"],
            "pack --help": [py, "-m", "pack", "--help"],
        },
        n,
        env=env,
        cwd=REPO,
    )
    base = med["python -c pass"]
    print(f"machine: {machine()}  (median of {n}, interleaved)")
    for k, v in med.items():
        print(f"{k:<20} {v * 1000:7.1f} ms   {v / base:5.2f}x python -c pass")
    worst = max(med["pack list"], med["pack verify --help"]) / base
    print(f"RESULT startup_ratio={worst:.2f} target<4.0 {'OK' if worst < 4 else 'OVER'}")


if __name__ == "__main__":
    main()
