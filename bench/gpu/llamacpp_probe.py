"""Which llama.cpp CUDA configurations load and decode here, each in its own process (a crash in one
is reported, not fatal): synthetic GGUFs written first in a separate process (writing needs torch),
then each case loads one with llama-cpp-python and decodes a few tokens; `torch-first` imports torch
(and touches CUDA) before llama.cpp, as a pack process that writes its GGUF on the fly does.

    python3 bench/gpu/llamacpp_probe.py OUT_FILE [--n-decode 8]

Prints and writes one JSON object: {case: {rc, seconds, tok_s?, tail}}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRITE = """
import json, sys
from pack.models.gguf import synthetic_gguf
print(json.dumps({k: str(synthetic_gguf(n, qtype=q)) for k, (n, q) in json.loads(sys.argv[1]).items()}))
"""
DECODE = """
import sys, time
if sys.argv[3] == "1":
    import torch
    torch.ones(1, device="cuda").sum().item()
import llama_cpp
from pack.experiments.throughput.llamacpp import _greedy_decode
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=512, n_batch=512, n_gpu_layers=-1, verbose=True)
toks = llm.tokenize(b"Hello, the quick brown fox", add_bos=True)
r = _greedy_decode(llm, toks, int(sys.argv[2]))
print("RESULT", r["decode_tok_s"], r["harness_overhead_pct"])
"""


def main() -> None:
    out = Path(sys.argv[1])
    n_decode = sys.argv[sys.argv.index("--n-decode") + 1] if "--n-decode" in sys.argv else "8"
    env = dict(
        os.environ,
        PYTHONFAULTHANDLER="1",
        PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p),
    )
    models = {"tiny-f32": ["tiny-llama", "F32"], "mid-q8": ["mid-llama", "Q8_0"]}
    w = subprocess.run(
        [sys.executable, "-c", WRITE, json.dumps(models)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    results: dict = {"write": {"rc": w.returncode, "tail": (w.stderr or "")[-1500:]}}
    paths = json.loads(w.stdout.strip().splitlines()[-1]) if w.returncode == 0 else {}
    cases = [(m, "0") for m in paths] + [("mid-q8", "1")] if paths else []
    for model, torch_first in cases:
        name = model + ("+torch-first" if torch_first == "1" else "")
        t0 = time.time()
        try:
            p = subprocess.run(
                [sys.executable, "-c", DECODE, paths[model], n_decode, torch_first],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            rc, text = p.returncode, (p.stdout or "") + (p.stderr or "")
        except subprocess.TimeoutExpired as e:
            rc, text = "timeout", str(e.stdout or "") + str(e.stderr or "")
        res = {"rc": rc, "seconds": round(time.time() - t0, 1), "tail": text[-1200:]}
        for line in text.splitlines():
            if line.startswith("RESULT"):
                res["tok_s"], res["overhead_pct"] = map(float, line.split()[1:3])
        results[name] = res
    out.write_text(json.dumps(results, indent=1))
    print(
        json.dumps(
            {k: {x: v.get(x) for x in ("rc", "seconds", "tok_s", "overhead_pct")} for k, v in results.items()}
        )
    )


if __name__ == "__main__":
    main()
