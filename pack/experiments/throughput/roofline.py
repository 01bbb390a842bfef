"""The memory-bandwidth roofline of single-stream decoding.

At batch 1 every decode step reads every weight once (plus the KV cache so far), so

    bound_tok_s = device_bandwidth (bytes/s) / bytes_read_per_token (bytes)
    fraction    = measured_tok_s / bound_tok_s

`fraction` tells a reader how far a run is from the limit: llama.cpp on a GPU typically reaches
0.6 to 0.8; a Python decode loop of a small model is launch-bound and sits far below.

Bytes per token: all weight tensors as stored (quantized size), except the token embedding, of which
one row is read, plus K and V of every layer at the mean decode position (prompt + n/2).
Device bandwidth is measured (a large copy: bytes read + bytes written over its time) or given.
"""

from __future__ import annotations

import os
import threading
import time


def kv_bytes_per_token(
    n_layers: int, n_kv_heads: int, head_dim: int, position: float, elem_bytes: float
) -> float:
    """K and V of every layer for `position` cached tokens, read once per decode step (bytes)."""
    return 2.0 * n_layers * n_kv_heads * head_dim * position * elem_bytes


def gguf_bytes_per_token(info, position: float, kv_elem_bytes: float = 2.0) -> dict:
    """{weights, kv, total} bytes read per decode token for a GGUFInfo (llama.cpp's KV cache is F16)."""
    tb = dict(info.tensor_bytes)
    emb = tb.pop("token_embd.weight", 0)
    shape = info.tensor_shapes.get("token_embd.weight") or [1, 1]
    weights = sum(tb.values()) + emb / max(shape[0], 1)  # one embedding row per token
    if "output.weight" not in info.tensor_bytes:  # tied embeddings: the output projection reads all of it
        weights += emb
    n_head = int(info.get("attention.head_count", 1) or 1)
    head_dim = int(info.get("attention.key_length") or int(info.get("embedding_length", 0)) // n_head or 1)
    kv = kv_bytes_per_token(
        int(info.get("block_count", 0)),
        int(info.get("attention.head_count_kv", n_head)),
        head_dim,
        position,
        kv_elem_bytes,
    )
    return {"weights": float(weights), "kv": float(kv), "total": float(weights + kv)}


def hf_bytes_per_token(model, position: float) -> dict:
    """The same for a transformers causal LM (parameters in their dtype; the KV cache in it too)."""
    cfg = model.config
    params = {n: p for n, p in model.named_parameters()}
    total = sum(p.numel() * p.element_size() for p in params.values())
    emb = model.get_input_embeddings().weight
    emb_bytes = emb.numel() * emb.element_size()
    tied = getattr(cfg, "tie_word_embeddings", False)
    weights = total - (0 if tied else emb_bytes) + emb_bytes / emb.shape[0]
    n_head = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    kv = kv_bytes_per_token(
        cfg.num_hidden_layers,
        getattr(cfg, "num_key_value_heads", n_head),
        head_dim,
        position,
        emb.element_size(),
    )
    return {"weights": float(weights), "kv": float(kv), "total": float(weights + kv)}


def measure_cpu_bandwidth(mib: int = 256, repeats: int = 5, threads: int | None = None) -> dict:
    """Copy bandwidth of host memory with one numpy copy per core (numpy drops the GIL for it)."""
    import numpy as np

    threads = threads or os.cpu_count() or 1
    n = (mib << 20) // 8
    src, dst = np.ones(n), np.empty(n)
    chunks = [slice(i * n // threads, (i + 1) * n // threads) for i in range(threads)]
    best = float("inf")
    for _ in range(repeats):
        ts = [threading.Thread(target=np.copyto, args=(dst[c], src[c])) for c in chunks]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        best = min(best, time.perf_counter() - t0)
    return {
        "bytes_per_s": 2 * src.nbytes / best,
        "method": f"numpy copy of {mib} MiB on {threads} thread(s), best of {repeats}",
    }


def measure_cuda_bandwidth(mib: int = 1024, repeats: int = 20) -> dict:
    """Copy bandwidth of GPU memory: device-to-device copies timed with CUDA events."""
    import torch

    n = (mib << 20) // 4
    src = torch.ones(n, device="cuda", dtype=torch.float32)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000.0 / repeats
    del src, dst
    torch.cuda.empty_cache()
    return {
        "bytes_per_s": 2 * n * 4 / seconds,
        "method": f"torch device copy of {mib} MiB, mean of {repeats}",
    }


def measure_cuda_bandwidth_isolated(timeout_s: float = 120) -> dict:
    """measure_cuda_bandwidth in a child process, for processes that must not load torch's CUDA stack.

    A llama.cpp CUDA build links the toolkit's cuBLAS; torch loads the cuBLAS of its own wheels. In one
    process the second library resolves to the first one's soname and llama.cpp segfaults (seen on an
    H200, 2026-12-02: decode ran alone and crashed once torch had touched CUDA first). A child process
    keeps the two apart; its result is the same measurement.
    """
    import json
    import subprocess
    import sys

    code = (
        "import json; from pack.experiments.throughput.roofline import measure_cuda_bandwidth as m; "
        "print(json.dumps(m()))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)
    if p.returncode != 0 or not p.stdout.strip():
        raise RuntimeError(f"the bandwidth probe exited {p.returncode}: {(p.stderr or '').strip()[-300:]}")
    return json.loads(p.stdout.strip().splitlines()[-1]) | {"process": "child (kept apart from llama.cpp)"}


def device_bandwidth(device: str, cache: dict, given_gbs: float | None = None, isolate: bool = False) -> dict:
    """Measured once per process and device (or the value a row gives, in GB/s).

    isolate: measure a CUDA device in a child process (llama.cpp rows: see measure_cuda_bandwidth_isolated).
    """
    if given_gbs:
        return {
            "bytes_per_s": float(given_gbs) * 1e9,
            "method": "given by the row (params.roofline.bandwidth_gbs)",
        }
    key = ("device_bandwidth", device)
    if key not in cache:
        if not device.startswith("cuda"):
            cache[key] = measure_cpu_bandwidth()
        else:
            cache[key] = measure_cuda_bandwidth_isolated() if isolate else measure_cuda_bandwidth()
    return cache[key]


def roofline(tok_s: float, bytes_per_token: float, bytes_per_s: float) -> dict:
    """{bound_tok_s, fraction}: the bandwidth limit of decode and how much of it was reached."""
    bound = bytes_per_s / bytes_per_token if bytes_per_token > 0 else float("nan")
    return {"bound_tok_s": bound, "fraction": tok_s / bound if bound and bound == bound else float("nan")}
