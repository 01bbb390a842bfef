"""ECMoE downstream GSM8K (journal 2026-02-19 / 02-20): lm-eval's `gsm8k_cot` (8-shot chain of
thought, strict-match and flexible-extract) through lm-eval's HF wrapper around the model this
process already loaded; compression hooks are swapped between methods, never the model.

The questions come from a local JSONL in GSM8K's format ({"question", "answer": "... #### 42"});
nothing is fetched. lm-eval runs it as a task that `include`s lm-eval's own gsm8k-cot.yaml (same
prompt, 8 fixed exemplars, filters and metric) with only the dataset swapped for the local file:

    include: <lm_eval>/tasks/gsm8k/gsm8k-cot.yaml
    task: pack_gsm8k_cot_local
    dataset_path: json
    dataset_kwargs: {data_files: {test: <file>}}

params:
    model, dtype, device_map, seed, experts_implementation     see model_io
    backend: hf (lm-eval's HFLM; the only one implemented)
    gsm8k_data: path to the JSONL, or "synthetic" (n_synthetic generated word problems)
    expect_records: the number of problems the file must hold (1319 at full scale: GSM8K's test split)
    limit: examples to evaluate (null = all of them)   num_fewshot: 8   batch_size: 1
    max_gen_toks: cap on generated tokens (null = the task's default, 256)
    method / methods, bits, router_modes          as in task2; method "none" = uncompressed baseline
    results_file: JSON list upserted by tag (default runs/<paper>/downstream_results.json)

metrics: <tag>.strict_match, <tag>.flexible_extract (fractions of examples), n_examples, where
tag is "baseline" or <method>_int<bits>.<router mode>. Entries in results_file use the journal's
tags: "absmax_int8", "absmax_int8_uncompressed", "baseline".
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from pydantic import Field, StrictInt, field_validator

from ... import fsio
from ...errors import ManifestError, require
from ...results import RepResult, RunContext
from ...strict import PositiveInt
from ..params import parse
from . import model_io
from .hooks import Hooks, attach_compression, find_moe_blocks
from .task2 import parse_configs, tag

TASK = "pack_gsm8k_cot_local"
REQUIRED = ("question", "answer")
GSM8K_TEST_SIZE = 1319
HOWTO = (
    "make it with `python -c \"from datasets import load_dataset; load_dataset('openai/gsm8k', 'main', "
    "split='test').to_json('{path}')\"` (docs/ecmoe.md)"
)


class Params(model_io.ModelParams):
    """A GSM8K row's params (the one owner of them)."""

    backend: str = "hf"
    gsm8k_data: str = "synthetic"
    n_synthetic: PositiveInt = 20
    expect_records: PositiveInt | None = None
    limit: PositiveInt | None = None
    num_fewshot: Annotated[StrictInt, Field(ge=0)] = 8
    max_gen_toks: PositiveInt | None = None
    batch_size: PositiveInt = 1
    method: str | None = None
    methods: str | list[str] | None = None
    bits: StrictInt | list[StrictInt] = [8, 4, 2]
    router_modes: str | list[str] = ["compressed", "uncompressed"]
    results_file: str | None = None

    @field_validator("backend")
    @classmethod
    def _backend(cls, v):
        if v != "hf":
            raise ValueError(
                f"{v!r}: only lm-eval's HF wrapper ('hf') is implemented (the journal's vLLM path "
                "needs a patched vLLM; see docs/ecmoe.md)"
            )
        return v


def check_file(path: Path) -> int:
    """Number of records; ManifestError naming the line and the missing field for a malformed one."""
    if not path.is_file():
        raise ManifestError(f"GSM8K file {path} (params.gsm8k_data) not found; " + HOWTO.format(path=path))
    n = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise ManifestError(
                    f"{path}:{lineno}: not a JSON object ({e.msg}); GSM8K files are JSONL"
                ) from None
            if not isinstance(rec, dict):
                raise ManifestError(f"{path}:{lineno}: expected a JSON object with 'question' and 'answer'")
            for field in REQUIRED:
                if not isinstance(rec.get(field), str):
                    raise ManifestError(
                        f"{path}:{lineno}: GSM8K record has no '{field}' field (a string); each line "
                        "needs 'question' and 'answer', the answer ending in '#### <number>'"
                    )
            if "####" not in rec["answer"]:
                raise ManifestError(
                    f"{path}:{lineno}: GSM8K 'answer' has no '#### <number>' final line, so no target "
                    "can be extracted from it"
                )
            n += 1
    if n == 0:
        raise ManifestError(f"GSM8K file {path} has no records")
    return n


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """Deterministic two-step word problems with GSM8K-style worked answers."""
    import random

    names = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis", "Tina", "Marco"]
    items = ["clips", "apples", "books", "pencils", "marbles", "cookies", "stickers", "tickets"]
    out = []
    for i in range(n):
        rng = random.Random(seed * 7919 + i)
        name, item = rng.choice(names), rng.choice(items)
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        out.append(
            {
                "question": f"{name} had {a} {item}. Then {name} got {b} more {item}. "
                f"How many {item} does {name} have now?",
                "answer": f"{name} had {a} {item} and got {b} more, so {a} + {b} = "
                f"<<{a}+{b}={a + b}>>{a + b}.\n#### {a + b}",
            }
        )
    return out


def task_yaml(data_file: Path, cache_dir: Path) -> str:
    import lm_eval

    base = Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k-cot.yaml"
    if not base.is_file():
        raise ManifestError(
            f"lm-eval {lm_eval.__version__} has no tasks/gsm8k/gsm8k-cot.yaml; install lm-eval 0.4.x"
        )
    return "\n".join(
        [
            f"include: {json.dumps(str(base))}",
            f"task: {TASK}",
            "dataset_path: json",
            "dataset_name: null",
            "dataset_kwargs:",
            "  data_files:",
            f"    test: {json.dumps(str(data_file))}",
            f"  cache_dir: {json.dumps(str(cache_dir))}",
            "",
        ]
    )


def upsert(path: Path, entry: dict) -> list[dict]:
    """Replace the entry with the same tag (a rerun replaces its result), else append; atomic write."""
    entries = []
    if path.is_file():
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise ManifestError(f"{path} is not valid JSON; move it aside and rerun") from None
        if not isinstance(entries, list):
            raise ManifestError(f"{path} must hold a JSON list of results")
    entries = [e for e in entries if e.get("tag") != entry["tag"]] + [entry]
    fsio.write_json_atomic(path, entries)
    return entries


def evaluate(lm, data_file: Path, *, limit, num_fewshot: int, max_gen_toks, samples_path: Path) -> dict:
    """{strict_match, flexible_extract, n_examples} of one lm-eval run on the local file."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # a local JSON needs no hub; never reach for one
    lm_eval = require("lm_eval", "lmeval", "GSM8K through lm-eval")
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="pack-gsm8k-") as tmp:
        (Path(tmp) / f"{TASK}.yaml").write_text(task_yaml(data_file, Path(tmp) / "hf-datasets"))
        tm = TaskManager(include_path=tmp, include_defaults=False)
        gen = {"max_gen_toks": int(max_gen_toks)} if max_gen_toks else None
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=[TASK],
            task_manager=tm,
            num_fewshot=num_fewshot,
            limit=limit,
            gen_kwargs=gen,
            log_samples=True,
            bootstrap_iters=0,
        )
    res = out["results"][TASK]
    samples = out.get("samples", {}).get(TASK, [])
    with open(samples_path, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(
                json.dumps(
                    {
                        "doc_id": s["doc_id"],
                        "target": s["target"],
                        "response": s["resps"][0][0],
                        "filtered": s["filtered_resps"],
                        "filter": s.get("filter"),
                        "exact_match": s.get("exact_match"),
                    },
                    default=str,
                )
                + "\n"
            )
    return {
        "strict_match": float(res["exact_match,strict-match"]),
        "flexible_extract": float(res["exact_match,flexible-extract"]),
        "n_examples": len({s["doc_id"] for s in samples}) or int(res.get("sample_len", 0)),
    }


def _lm(params: dict, ctx: RunContext, model, tok):
    key = ("ecmoe.hflm", model_io.model_key(params, ctx), int(params.get("batch_size", 1)))
    if key not in ctx.cache:
        require("lm_eval", "lmeval", "GSM8K through lm-eval")
        from lm_eval.models.huggingface import HFLM

        ctx.cache[key] = HFLM(pretrained=model, tokenizer=tok, batch_size=int(params.get("batch_size", 1)))
    return ctx.cache[key]


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    p = parse(Params, params, "ecmoe_gsm8k")
    configs, modes = parse_configs(params)
    data = model_io.resolve_data(
        p.gsm8k_data,
        ctx,
        "gsm8k",
        lambda f: f.write_text(
            "".join(json.dumps(r) + "\n" for r in synthetic_records(p.n_synthetic)), encoding="utf-8"
        ),
    )
    n_records = check_file(data)
    if p.expect_records is not None and n_records != p.expect_records:
        raise ManifestError(
            f"GSM8K file {data} holds {n_records} problems but params.expect_records is "
            f"{p.expect_records} (GSM8K's test split has {GSM8K_TEST_SIZE}); " + HOWTO.format(path=data)
        )
    limit = p.limit
    model, tok, _ = model_io.load_model(params, ctx)
    blocks = find_moe_blocks(model, p.model)
    lm = _lm(params, ctx, model, tok)
    results_file = (
        Path(os.path.expandvars(p.results_file))
        if p.results_file
        else ctx.run_dir.parent.parent / "downstream_results.json"
    )
    runs = [("baseline", "baseline", None, None, None)]
    if configs:
        runs = [
            (
                f"{tag(m, b)}.{mode}",
                tag(m, b) + ("_uncompressed" if mode == "uncompressed" else ""),
                m,
                b,
                mode,
            )
            for m, b in configs
            for mode in modes
        ]
    res = RepResult(
        info={
            "data_file": str(data),
            "records_in_file": n_records,
            "limit": limit,
            "results_file": str(results_file),
        }
    )
    for metric_tag, journal_tag, method, bits, mode in runs:
        hooks = attach_compression(blocks, method, bits, mode) if method else Hooks()
        with hooks:
            ctx.log(f"GSM8K {journal_tag}: limit={limit} fewshot={p.num_fewshot}")
            out = evaluate(
                lm,
                data,
                limit=limit,
                num_fewshot=p.num_fewshot,
                max_gen_toks=p.max_gen_toks,
                samples_path=ctx.rep_dir / f"{journal_tag}.samples.jsonl",
            )
        res.metrics[f"{metric_tag}.strict_match"] = out["strict_match"]
        res.metrics[f"{metric_tag}.flexible_extract"] = out["flexible_extract"]
        res.metrics["n_examples"] = out["n_examples"]
        upsert(
            results_file,
            {
                "tag": journal_tag,
                "method": method or "none",
                "bits": bits,
                "router_mode": mode,
                "task": "gsm8k_cot",
                "num_fewshot": p.num_fewshot,
                "limit": limit,
                "n_examples": out["n_examples"],
                "strict_match": out["strict_match"],
                "flexible_extract": out["flexible_extract"],
                "model": p.model,
                "run_id": ctx.run_dir.name,
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        ctx.log(
            f"GSM8K {journal_tag}: strict {out['strict_match']:.4f} flexible {out['flexible_extract']:.4f} "
            f"on {out['n_examples']} examples"
        )
    return res
