"""A co-resident GPU workload for the contamination test: bf16 matmuls on one GPU until killed.

    python3 bench/gpu/matmul_load.py --ready FILE [--seconds 300] [--size 8192]

Writes FILE once CUDA is initialised and the first matmuls ran, so the caller can start measuring
with the load already on the GPU. With --cpu it runs float64 matmuls with numpy's BLAS instead, which
takes every core (the CPU dry run).
"""

import argparse
import time
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--ready", required=True)
ap.add_argument("--seconds", type=float, default=300)
ap.add_argument("--size", type=int, default=8192)
ap.add_argument("--cpu", action="store_true")
args = ap.parse_args()
end = time.time() + args.seconds
if args.cpu:
    import numpy as np

    a = np.random.default_rng(0).standard_normal((1024, 1024))
    Path(args.ready).write_text("cpu (numpy BLAS on every core)\n")
    while time.time() < end:
        a @ a
else:
    import torch

    a = torch.randn(args.size, args.size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(args.size, args.size, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    Path(args.ready).write_text(f"{torch.cuda.get_device_name(0)}\n")
    n = 0
    while time.time() < end:
        c = a @ b
        n += 1
        if n % 20 == 0:  # keep the queue short so a kill stops the load promptly
            torch.cuda.synchronize()
    del c
