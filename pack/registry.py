"""Experiment registry: names -> module paths, so listing and validating rows never
imports a backend. Each experiment module exposes:

    Params                                                       (a pack.strict.Strict model of its params)
    run_rep(params: dict, ctx: RunContext) -> RepResult          (required; one repetition)
    summarize(params, ctx, reps: list[RepResult]) -> RepResult   (optional; metrics over all reps)
    requirements(params) -> list[str]                            (optional; reasons it cannot run here)

`Params` is the one owner of an experiment's params: `pack validate`, `plan`, `launch` and `run`
check every row's params at both scales against it (manifest.check_params) before anything runs.
So the module must import without torch or a backend: heavy imports (torch, transformers,
llama_cpp) stay inside functions.
"""

from __future__ import annotations

import importlib

from .strict import did_you_mean

EXPERIMENTS: dict[str, str] = {
    "command": "pack.experiments.command",
    "wire_compression": "pack.experiments.wire_compression",
    "int6_clip_search": "pack.experiments.int6_clip_search",
    "throughput_llamacpp": "pack.experiments.throughput.llamacpp",
    "throughput_hf": "pack.experiments.throughput.hf",
    "ecmoe_task2": "pack.experiments.ecmoe.task2",
    "ecmoe_gsm8k": "pack.experiments.ecmoe.gsm8k",
    "ecmoe_ep_traffic": "pack.experiments.ecmoe.ep_traffic",
    "ecmoe_distribution": "pack.experiments.ecmoe.distribution",
    "ecmoe_compressor": "pack.experiments.ecmoe.compressor_task",
    "latent_inference": "pack.experiments.latent_inference",
    "forensics": "pack.experiments.forensics.experiment",
    "dense_quant": "pack.experiments.dense_quant",
}


def known(name: str) -> bool:
    return name in EXPERIMENTS


def unknown_message(name: str) -> str:
    return f"unknown experiment '{name}'; " + did_you_mean(name, EXPERIMENTS)


def load(name: str):
    from .errors import ManifestError

    if name not in EXPERIMENTS:
        raise ManifestError(unknown_message(name))
    return importlib.import_module(EXPERIMENTS[name])


def params_model(name: str):
    """The experiment's `Params` model (a pack.strict.Strict class); every experiment has one."""
    from .errors import ManifestError

    if name not in EXPERIMENTS:
        raise ManifestError(unknown_message(name))
    module = importlib.import_module(EXPERIMENTS[name])
    if not hasattr(module, "Params"):
        raise TypeError(
            f"{module.__name__} exports no Params model; every experiment needs one (see pack/registry.py)"
        )
    return module.Params
