"""The seed's uniform JSON: one file per experiment, in two forms validated by one JSON Schema.

compact (what `pack run` writes):  <name>.json + <name>.safetensors
    runs[i].signals_key names the decode's tensors in the sidecar (signals.py layout, unique
    positions); runs[i].decode_steps carry step, token_id and token_text only.
seed-json (`pack export --format seed-json`):  the seed's per-step layout
    decode_steps[t].hidden_states["layer_k"]["pos_-j"] = [hidden_dim floats], key_vectors likewise,
    logprobs["pos_-j"] = {token_ids, log_probs}. Following the seed, when a configuration's
    repetitions are bit-identical only its last repetition carries vectors; the others say
    `signals_identical_to_rep` (all_reps=True repeats the vectors in every run instead).

Files from different machines (GPU kinds, CUDA images) merge into one (`merge`): configurations
and runs are concatenated after checking that model, prompt and extraction settings agree.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from ...errors import PackError

SCHEMA_ID = "pack.forensics.uniform/1"
SCHEMA_PATH = Path(__file__).with_name("uniform.schema.json")
FILE_NAMES = {
    "reference": "reference_baseline",
    "batch_size": "batch_size_experiment",
    "compile": "compile_experiment",
    "quantization": "quantization_experiment",
    "attention": "attention_experiment",
    "concurrent_streams": "concurrent_streams_experiment",
    "cuda_version": "cuda_version_experiment",
    "tensor_parallel": "tensor_parallel_experiment",
    "expert_parallel": "expert_parallel_experiment",
}


def file_stem(experiment_type: str) -> str:
    return FILE_NAMES.get(experiment_type, f"{experiment_type}_experiment")


def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate(doc: dict) -> list[str]:
    """Schema problems as sentences ("runs/0/decode_steps/3: 'token_id' is a required property")."""
    from ...errors import require

    jsonschema = require("jsonschema", "hf", "validating forensics JSON")
    validator = jsonschema.Draft202012Validator(load_schema())
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"{where}: {err.message[:300]}")
    return out


def write(directory: Path, doc: dict, tensors: dict) -> Path:
    """Write <stem>.json and its sidecar <stem>.safetensors; return the JSON path."""
    from ... import fsio
    from . import signals as sigmod

    stem = file_stem(doc["experiment_metadata"]["experiment_type"])
    doc = copy.deepcopy(doc)
    doc["experiment_metadata"].setdefault("storage", {})["sidecar"] = f"{stem}.safetensors"
    sigmod.save(tensors, directory / f"{stem}.safetensors", metadata={"schema": SCHEMA_ID})
    fsio.write_json_atomic(directory / f"{stem}.json", doc)
    return directory / f"{stem}.json"


def read(path: Path) -> tuple[dict, dict]:
    """A compact file and its sidecar, or a seed-json file (tensors rebuilt from its vectors)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackError(f"{path}: no such forensics JSON file") from None
    except ValueError as e:
        raise PackError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or "experiment_metadata" not in doc or "runs" not in doc:
        raise PackError(f"{path}: not a forensics uniform JSON (no experiment_metadata / runs)")
    sidecar = doc["experiment_metadata"].get("storage", {}).get("sidecar")
    if sidecar and any("signals_key" in r for r in doc["runs"]):
        from . import signals as sigmod

        side = Path(path).with_name(sidecar)
        if not side.is_file():
            raise PackError(f"{path}: its signals sidecar {side.name} is missing; copy it next to the JSON")
        return doc, sigmod.load(side)
    return doc, tensors_from_seed_json(doc)


def _unique_positions(meta: dict) -> tuple[int, int]:
    ec = meta["extraction_config"]
    depth = max(-p for p in ec["positions"])
    return depth, int(meta["decode_steps"]) + depth - 1


def expand(doc: dict, tensors: dict, all_reps: bool = False) -> dict:
    """The compact document -> the seed's per-step layout (vectors as lists of floats)."""
    out = copy.deepcopy(doc)
    meta = out["experiment_metadata"]
    depth, _ = _unique_positions(meta)
    positions = meta["extraction_config"]["positions"]
    layers = meta["extraction_config"]["layers"]
    last_rep: dict[str, int] = {}
    for r in out["runs"]:
        if r.get("signals_key"):
            last_rep[r["config_id"]] = max(last_rep.get(r["config_id"], -1), r["rep_id"])
    cache: dict[str, dict] = {}
    for r in out["runs"]:
        key = r.pop("signals_key", None)
        if key is None:
            continue
        identical = r.get("bit_identical_to_rep0", False) and not all_reps
        if identical and r["rep_id"] != last_rep[r["config_id"]] and _all_identical(out, r["config_id"]):
            r["signals_identical_to_rep"] = last_rep[r["config_id"]]
            continue
        if key not in cache:
            cache[key] = {
                n[len(key) + 1 :]: t.float().tolist() if t.is_floating_point() else t.tolist()
                for n, t in tensors.items()
                if n.startswith(key + "/")
            }
        v = cache[key]
        for step, ds in enumerate(r["decode_steps"]):

            def at(pos, step=step):
                return step + depth + pos

            ds["hidden_states"] = {
                f"layer_{k}": {f"pos_{j}": v[f"hidden_states/layer_{k}"][at(j)] for j in positions}
                for k in layers
            }
            ds["key_vectors"] = {
                f"layer_{k}": {f"pos_{j}": v[f"key_vectors/layer_{k}"][at(j)] for j in positions}
                for k in layers
            }
            ds["logprobs"] = {
                f"pos_{j}": {
                    "token_ids": v["logprobs/token_ids"][at(j)],
                    "log_probs": v["logprobs/log_probs"][at(j)],
                }
                for j in positions
            }
    meta.setdefault("storage", {}).update(format="seed-json", sidecar=None)
    return out


def _all_identical(doc: dict, config_id: str) -> bool:
    runs = [r for r in doc["runs"] if r["config_id"] == config_id]
    return all(r.get("signals_sha256") == runs[0].get("signals_sha256") for r in runs)


def tensors_from_seed_json(doc: dict) -> dict:
    """Rebuild unique-position tensors (float32) from a seed-json document, adding signals_key to runs."""
    import torch

    meta = doc["experiment_metadata"]
    depth, n_unique = _unique_positions(meta)
    layers = meta["extraction_config"]["layers"]
    tensors: dict = {}
    by_rep = {(r["config_id"], r["rep_id"]): r for r in doc["runs"]}
    for r in doc["runs"]:
        src = r
        if "signals_identical_to_rep" in r:
            src = by_rep.get((r["config_id"], r["signals_identical_to_rep"]))
            if src is None:
                raise PackError(f"run {r['config_id']} rep {r['rep_id']} points at a missing repetition")
        if not src["decode_steps"] or "hidden_states" not in src["decode_steps"][0]:
            continue
        key = f"{src['config_id']}/rep{src['rep_id']}"
        r["signals_key"] = key
        if f"{key}/tokens" in tensors:
            continue
        steps = src["decode_steps"]
        tensors[f"{key}/tokens"] = torch.tensor([s["token_id"] for s in steps], dtype=torch.int64)
        for sig in ("hidden_states", "key_vectors"):
            for k in layers:
                rows = [None] * n_unique
                for t, s in enumerate(steps):
                    for pos, vec in s[sig][f"layer_{k}"].items():
                        rows[t + depth + int(pos[4:])] = vec
                tensors[f"{key}/{sig}/layer_{k}"] = torch.tensor(rows, dtype=torch.float32)
        ids, lps = [None] * n_unique, [None] * n_unique
        for t, s in enumerate(steps):
            for pos, d in s["logprobs"].items():
                ids[t + depth + int(pos[4:])] = d["token_ids"]
                lps[t + depth + int(pos[4:])] = d["log_probs"]
        tensors[f"{key}/logprobs/token_ids"] = torch.tensor(ids, dtype=torch.int64)
        tensors[f"{key}/logprobs/log_probs"] = torch.tensor(lps, dtype=torch.float32)
    return tensors


MERGE_MUST_AGREE = ("model", "sequence_length", "decode_steps", "extraction_config")


def merge(
    items: list[tuple[dict, dict]],
    variable: str | None = None,
    experiment_type: str | None = None,
    names: list[str] | None = None,
) -> tuple[dict, dict]:
    """Merge documents (and their tensors) from several machines/images into one.

    variable / experiment_type relabel the result (e.g. exp0 + exp6a + exp6b -> cuda_version):
    every configuration's variable_value is re-read from its fixed_params[variable].
    """
    if not items:
        raise PackError("nothing to merge")
    names = names or [f"input {i + 1}" for i in range(len(items))]
    first, _ = items[0]
    out = copy.deepcopy(first)
    out["configurations"], out["runs"] = [], []
    tensors: dict = {}
    seen: dict[str, list] = {}
    m0 = first["experiment_metadata"]
    for (doc, tens), name in zip(items, names, strict=True):
        m = doc["experiment_metadata"]
        for k in MERGE_MUST_AGREE:
            a, b = _comparable(m0.get(k)), _comparable(m.get(k))
            if a != b:
                raise PackError(
                    f"cannot merge {name} with {names[0]}: experiment_metadata.{k} differs ({b} vs {a})"
                )
        if m.get("prompt", {}).get("sha256") != m0.get("prompt", {}).get("sha256"):
            raise PackError(f"cannot merge {name} with {names[0]}: they decoded different prompts")
        for c in doc["configurations"]:
            # The same configuration may arrive twice (exp0's baseline copied into exp6a's file): same
            # repetitions' digests -> the same data, kept once; different data under one id is refused.
            digests = sorted(
                r.get("signals_sha256", "") for r in doc["runs"] if r["config_id"] == c["config_id"]
            )
            if c["config_id"] in seen:
                if seen[c["config_id"]] != digests:
                    raise PackError(
                        f"cannot merge {name}: config_id '{c['config_id']}' already came from another "
                        f"file with different signals; rename one of them"
                    )
                continue
            seen[c["config_id"]] = digests
            out["configurations"].append(copy.deepcopy(c))
            for r in doc["runs"]:
                if r["config_id"] == c["config_id"]:
                    out["runs"].append(copy.deepcopy(r))
        for n, t in tens.items():
            tensors.setdefault(n, t)
    om = out["experiment_metadata"]
    if experiment_type:
        om["experiment_type"] = experiment_type
    if variable:
        om["variable_tested"] = variable
        for c in out["configurations"]:
            c["variable_value"] = c.get("fixed_params", {}).get(variable)
    om["merged_from"] = names
    return out, tensors


def _comparable(v):
    if isinstance(v, dict):  # the conventions' prose may be reworded between versions
        return {k: x for k, x in v.items() if not k.endswith("_convention")}
    return v
