"""exp7 / exp8: tensor- and expert-parallel decoding under torchrun, with transformers' own
DistributedConfig (tp_size=N; enable_expert_parallel=True shards only the MoE experts).

The parent (`launch`) writes a job file and starts `torchrun --nproc-per-node N -m
pack.experiments.forensics.distributed JOB`. Every rank loads the model once and runs all
repetitions of the configuration (so a TP/EP configuration costs one load per rank, not one per
repetition); rank 0 writes `rep-NNN.safetensors` and `report.json` into the job's folder.
On CUDA each rank takes GPU `LOCAL_RANK` and NCCL; on a CPU torch.distributed uses gloo, which is
how the smoke rows run a real 2-process TP/EP decode without GPUs.

Keys under TP: k_proj is column-sharded, so each rank holds n_kv/N heads in its cache; the ranks'
keys are all-gathered and concatenated in rank order, which is head order. Under EP attention is
not sharded and every rank already holds all heads.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from ... import fsio
from ...errors import PackError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(job: dict, job_dir: Path, *, nproc: int, timeout_s: float, log) -> dict:
    """Run the job under torchrun; return rank 0's report. Raises PackError with the log's last line."""
    job_dir.mkdir(parents=True, exist_ok=True)
    fsio.write_text_atomic(job_dir / "job.json", json.dumps(job, indent=2))
    root = str(Path(__file__).resolve().parents[3])  # the checkout holding `pack`
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if job.get("cpu_threads"):
        env["OMP_NUM_THREADS"] = str(job["cpu_threads"])
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc}",
        "--nnodes=1",
        f"--master-port={_free_port()}",
        "-m",
        "pack.experiments.forensics.distributed",
        str(job_dir / "job.json"),
    ]
    log(f"torchrun: {' '.join(cmd[2:])}")
    logf = job_dir / "torchrun.log"
    with open(logf, "w") as out:
        try:
            res = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=max(timeout_s, 1)
            )
        except subprocess.TimeoutExpired:
            raise PackError(f"torchrun did not finish within {timeout_s:.0f} s (log: {logf})") from None
    report = job_dir / "report.json"
    if res.returncode != 0 or not report.is_file():
        lines = [ln for ln in logf.read_text(errors="replace").splitlines() if ln.strip()]
        errs = [ln for ln in lines if "Error" in ln or "error" in ln]
        raise PackError(
            f"torchrun exited with {res.returncode}: {(errs or lines or ['no output'])[-1].strip()} (log: "
            f"{logf})"
        )
    return json.loads(report.read_text())


def _gather_keys_factory(dist, full_width: int):
    import torch

    from .extraction import local_keys

    def read(cache, layer_index: int, last: int):
        k = local_keys(cache, layer_index, last)
        if k.shape[1] == full_width:  # attention not sharded (EP), or a single rank
            return k
        parts = [torch.empty_like(k) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, k.contiguous())
        return torch.cat(parts, dim=1)

    return read


def worker(job_path: str) -> None:
    import torch
    import torch.distributed as dist
    from transformers.distributed import DistributedConfig

    from ...models.sources import load_causal_lm
    from . import signals as sigmod
    from .extraction import ExtractionSpec, greedy_decode

    job = json.loads(Path(job_path).read_text())
    out = Path(job["out_dir"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = job["device"]
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if job.get("cpu_threads") and device == "cpu":
        torch.set_num_threads(int(job["cpu_threads"]))
    n = int(job["size"])
    cfg = DistributedConfig(tp_size=n, enable_expert_parallel=job["mode"] == "ep")
    t0 = time.perf_counter()
    loaded = load_causal_lm(
        job["model"],
        dtype=job["dtype"],
        device=device,
        attention=job["attention"],
        seed=job["model_seed"],
        distributed_config=cfg,
    )
    load_s = time.perf_counter() - t0
    model = loaded.model
    rank = dist.get_rank()
    c = model.config
    full_width = c.num_key_value_heads * getattr(c, "head_dim", c.hidden_size // c.num_attention_heads)
    spec = ExtractionSpec(
        layers=tuple(job["layers"]), positions=tuple(job["positions"]), top_k=job["top_k"], steps=job["steps"]
    )
    ids = torch.tensor(
        [job["input_ids"][0]] if job.get("batch_one", True) else job["input_ids"], device=device
    )
    reps = []
    for r in range(int(job["reps"])):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())  # UTC, like every pack timestamp
        sig = greedy_decode(model, ids, spec, key_reader=_gather_keys_factory(dist, full_width))
        if rank == 0:
            sigmod.save(sigmod.to_tensors(sig, job["label"]), out / f"rep-{r:03d}.safetensors")
            reps.append(
                {
                    "rep": r,
                    "timestamp": stamp,
                    "runtime_s": sig.runtime_s,
                    "digest": sigmod.digest(sig),
                    "tokens": sig.tokens.tolist(),
                }
            )
        dist.barrier()
    if rank == 0:
        report = {
            "reps": reps,
            "world_size": dist.get_world_size(),
            "backend": dist.get_backend(),
            "load_s": load_s,
            "model_loads_per_rank": 1,
            "model_info": loaded.info,
        }
        fsio.write_text_atomic(out / "report.json", json.dumps(report, indent=2, default=str))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    worker(sys.argv[1])
