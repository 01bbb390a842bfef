"""Experiment registry: names -> "module:attr" strings, so listing and validating rows never
imports a backend. Each experiment module exposes:

    run_rep(params: dict, ctx: RunContext) -> RepResult          (required; one repetition)
    summarize(params, ctx, reps: list[RepResult]) -> RepResult   (optional; metrics over all reps)
    requirements(params) -> list[str]                            (optional; reasons it cannot run here)

Heavy imports (torch, transformers, llama_cpp) stay inside functions.
"""

from __future__ import annotations

import difflib
import importlib

EXPERIMENTS: dict[str, str] = {
    "command": "pack.experiments.command",
    "wire_compression": "pack.experiments.wire_compression",
    "int6_clip_search": "pack.experiments.int6_clip_search",
    "throughput_llamacpp": "pack.experiments.throughput.llamacpp",
    "throughput_hf": "pack.experiments.throughput.hf",
    "ecmoe_task2": "pack.experiments.ecmoe.task2",
    "ecmoe_gsm8k": "pack.experiments.ecmoe.gsm8k",
    "latent_inference": "pack.experiments.latent_inference",
    "forensics": "pack.experiments.forensics.experiment",
}


def known(name: str) -> bool:
    return name in EXPERIMENTS


def unknown_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(EXPERIMENTS), n=3)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(sorted(EXPERIMENTS))}"
    return f"unknown experiment '{name}'; {hint}"


def load(name: str):
    from .errors import ManifestError

    if name not in EXPERIMENTS:
        raise ManifestError(unknown_message(name))
    return importlib.import_module(EXPERIMENTS[name])
