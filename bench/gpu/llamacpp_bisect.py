"""Which part of the `pack run` process makes a CUDA llama.cpp load crash (issue 14), one case per process.

On the H200 (2026-12-02) `pack run` of a llama.cpp row died with SIGSEGV at model load while the same
build loaded the same GGUF in the benches. Each case below starts from a bare process and adds one thing
the `pack run` process has before the load, then loads with the exact keywords the pack's backend uses
and decodes a few tokens. Every case runs under bench/gpu/segv_backtrace.c (LD_PRELOAD), so a crash
leaves the native backtrace and the mapped libraries in <out>/<case>.segv even while llama-cpp-python
has fd 2 pointed at /dev/null.

    python3 bench/gpu/llamacpp_bisect.py MODEL.gguf OUTDIR [--n-gpu-layers -1] [--preload LIB.so]

Prints one line per case (rc, seconds, first frame of a crash) and writes OUTDIR/bisect.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

LOAD = """
import os, sys, llama_cpp
kw = dict(model_path=sys.argv[1], n_ctx=512, n_batch=512, n_threads=os.cpu_count(),
          n_threads_batch=os.cpu_count(), n_gpu_layers=int(sys.argv[2]), seed=0,
          verbose=os.environ.get("BISECT_VERBOSE") == "1", logits_all=False)
llm = llama_cpp.Llama(**kw)
toks = llm.tokenize(b"Hello, the quick brown fox", add_bos=True)
llm.eval(toks)
print("loaded and decoded", len(toks), "tokens", flush=True)
"""
NVML = "from pack import gpuinfo; gpuinfo.gpus(); gpuinfo.health(0); gpuinfo.processes()\n"
CUINIT = "import ctypes; _cu = ctypes.CDLL('libcuda.so.1'); print('cuInit', _cu.cuInit(0), flush=True)\n"
ALARM = (
    "import signal\n"
    "def _fire(s, f): raise TimeoutError()\n"
    "signal.signal(signal.SIGALRM, _fire); signal.setitimer(signal.ITIMER_REAL, 3600)\n"
)
IMPORTS = (
    "import pack.cli, pack.run, pack.registry, pack.provenance, pydantic, yaml, numpy\n"
    "import pack.experiments.throughput.llamacpp, pack.models.gguf as g; g.check_gguf(sys.argv[1])\n"
)
FINGERPRINT = "from pack import provenance; provenance.fingerprint(with_torch=False)\n"
STDCXX_LOCAL = "import ctypes; ctypes.CDLL('libstdc++.so.6')\n"
STDCXX_GLOBAL = "import ctypes, os; ctypes.CDLL('libstdc++.so.6', mode=os.RTLD_GLOBAL)\n"
PACK_IMPORT = "from pack.experiments.throughput.llamacpp import import_llama_cpp; import_llama_cpp()\n"

CASES = {
    "bare": "",
    "imports": IMPORTS,
    "alarm": ALARM,
    "nvml_first": NVML,
    "fingerprint_first": FINGERPRINT,
    "cuinit_then_nvml": CUINIT + NVML,
    "everything": IMPORTS + ALARM + FINGERPRINT + NVML,
    # round 2: a C++ runtime loaded before llama.cpp's libraries (numpy 2 and sentencepiece link
    # libstdc++), and the two ways out
    "numpy_first": "import numpy\n",
    "sentencepiece_first": "import sentencepiece\n",
    "stdcxx_local_first": STDCXX_LOCAL,
    "llama_first_then_imports": "import llama_cpp\n" + IMPORTS,
    "stdcxx_global_then_imports": STDCXX_GLOBAL + IMPORTS,
    "imports_then_stdcxx_global": IMPORTS + STDCXX_GLOBAL,
    "imports_then_pack_import": IMPORTS + PACK_IMPORT,
}


def run_case(name: str, code: str, args, out: Path, env: dict) -> dict:
    segv = out / f"{name}.segv"
    segv.unlink(missing_ok=True)
    e = dict(env, SEGV_LOG=str(segv))
    t0 = time.time()
    try:
        p = subprocess.run(
            [sys.executable, "-c", "import sys\n" + code + LOAD, args.model, str(args.n_gpu_layers)],
            capture_output=True,
            text=True,
            timeout=args.timeout,
            env=e,
        )
        rc, text = p.returncode, (p.stdout or "") + (p.stderr or "")
    except subprocess.TimeoutExpired as x:
        rc, text = "timeout", str(x)
    (out / f"{name}.txt").write_text(text)
    frames = segv.read_text(errors="replace").splitlines() if segv.exists() else []
    first = next((f for f in frames[2:12] if "segv_backtrace" not in f and "libc.so" not in f), None)
    return {
        "case": name,
        "rc": rc,
        "seconds": round(time.time() - t0, 2),
        "crash_frame": first,
        "frames": frames[:24],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out", type=Path)
    ap.add_argument("--n-gpu-layers", type=int, default=-1)
    ap.add_argument("--preload", default="build/segv_backtrace.so")
    ap.add_argument("--timeout", type=float, default=90)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), "."])))
    if Path(args.preload).is_file():
        env["LD_PRELOAD"] = str(Path(args.preload).resolve())
    results = []
    for name in args.cases.split(","):
        r = run_case(name, CASES[name], args, args.out, env)
        results.append(r)
        print(f"{name:28s} rc={r['rc']!s:8s} {r['seconds']:6.2f}s  {r['crash_frame'] or ''}", flush=True)
    (args.out / "bisect.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
