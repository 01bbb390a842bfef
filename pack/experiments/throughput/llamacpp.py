"""The llama.cpp throughput and perplexity backend (extra `llamacpp`: llama-cpp-python).

params (defaults are Paper B's public ablation script's):
    model: a .gguf path, or synthetic:tiny-llama (written once with pack.models.gguf)
    model_sha256: optional; a different file is an error naming it
    arms: {name: {model?, n_gpu_layers?, n_threads?, flash_attn?, ...}}   (default {baseline: {}})
    prompt: "Hello, the quick brown fox jumps over the lazy dog and runs into the night"
    n_decode: 32          greedy (temperature 0) single-token steps, EOS ignored, like llama-bench
    warmup: 1             untimed decode runs after loading
    rep_warmup: 0         untimed decode runs at the start of every repetition, before the watches (a GPU
                          idles while a repetition is written and ramps its clocks back up in the first
                          run after: 6.6 %, 3.2 %, 1.6 % slower on an H200, bench/throughput_quiet.py)
    ppl_reps: 1           repetitions that also measure perplexity (it is deterministic)
    ppl_text: builtin     or a UTF-8 file; builtin = pack.data.documents 0..3 (sha256 recorded)
    ppl_ctx: 512, ppl_batch: 512, ppl_chunks: 8
    n_threads: os.cpu_count(), n_gpu_layers: 0 (-1 on CUDA rows), n_ctx: max(ppl_ctx, 512),
    type_k / type_v: KV cache type f16 (llama.cpp's default), f32 or q8_0
    ab: {...} (ab.py), outputs: {...} (harness.py), roofline: {bandwidth_gbs?, device?}

Per arm and repetition (metric names `<arm>.<field>`):
    prefill_ms, decode_tok_s          llama.cpp's own timings (llama_perf_context: t_p_eval_ms,
                                      n_eval / t_eval_ms)
    prefill_wall_ms, decode_wall_tok_s   the harness's wall clock around the same calls
    sampling_pct                      100 * (wall of the greedy argmax over the logits) / llama.cpp decode
                                      time: the sampling any greedy decode does, which llama.cpp's own
                                      tools book apart from decode time (t_sample_ms)
    harness_overhead_pct              100 * (decode wall - wall inside llama_decode + llama_synchronize
                                      - sampling) / llama.cpp decode time: the harness's own Python per step
    engine_untimed_pct                100 * (wall inside those calls - llama.cpp decode time) / the same:
                                      llama.cpp's host work before its timer starts (not the harness's)
    bytes_per_token                   weights + KV read per decode step (roofline.py)
    ppl, nll, ppl_tokens              over ppl_chunks chunks of ppl_ctx tokens, each scored on its second
                                      half (the first half is context), as llama.cpp's perplexity tool does
    ppl_agrees_4dp (per run)          1 when every perplexity of the arm (ppl_reps >= 2) rounds alike at 4 dp
The model is loaded once per distinct load setting and kept in ctx.cache across arms and repetitions.

PACK_LLAMACPP_VERBOSE=1 loads with verbose=True: llama.cpp's own log reaches stderr (llama-cpp-python
otherwise points fd 2 at /dev/null during the load, which also swallows a crash's faulthandler dump).
A diagnostic switch, not a param: it changes no result, so it stays out of the params hash.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import math
import os
import time
import weakref
from typing import Literal

from pydantic import field_validator

from ...errors import PackError, require
from ...fsio import sha256_file
from ...results import RepResult, RunContext
from ...strict import Strict
from ..params import parse
from . import harness, roofline
from .params import ThroughputParams

LOAD_KEYS = (
    "model",
    "n_gpu_layers",
    "n_threads",
    "n_threads_batch",
    "n_batch",
    "n_ctx",
    "flash_attn",
    "use_mmap",
    "seed",
    "model_sha256",
    "qtype",
    "type_k",
    "type_v",
)
KV_TYPES = {"f32": 0, "f16": 1, "q8_0": 8}  # ggml type ids for the KV cache (llama.cpp's default is f16)


class ArmSettings(Strict):
    """An arm's own load settings (each defaults to the row's)."""

    model: str | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    n_threads_batch: int | None = None
    n_batch: int | None = None
    n_ctx: int | None = None
    flash_attn: bool | None = None
    use_mmap: bool | None = None
    seed: int | None = None
    model_sha256: str | None = None
    qtype: str | None = None
    type_k: Literal["f32", "f16", "q8_0"] | None = None  # KV_TYPES; "F16" is read as f16, as llama.cpp does
    type_v: Literal["f32", "f16", "q8_0"] | None = None

    @field_validator("type_k", "type_v", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.lower() if isinstance(v, str) else v


class Params(ThroughputParams, ArmSettings):
    """A `throughput_llamacpp` row's params (see the module doc): the one place that knows its keys."""

    arms: dict[str, ArmSettings | None] | None = None
    ppl_batch: int = 512
    ppl_chunks: int = 8
    ppl_ctx: int = 512
    rep_warmup: int = 0
    seed: int = 0


def import_llama_cpp():
    """llama_cpp (the `llamacpp` extra), imported with the C++ runtime in the process's global scope.

    Why: a CUDA build's libggml-cuda.so exports its own instances of libstdc++ templates (nvcc emits
    them). In a process where a C++ extension (numpy 2, sentencepiece through gguf) loaded libstdc++
    before llama.cpp's libraries, `pack run` died with SIGSEGV in llama_model::print_info, inside
    libggml-cuda's copy of std::ostream::_M_insert<long> (H200, CUDA 13, 2026-12-02; found with
    bench/gpu/llamacpp_bisect.py: the same load passed with llama_cpp imported first). Promoting
    libstdc++ to the global scope before the import binds every C++ symbol to the one real runtime.
    """
    import ctypes

    try:
        ctypes.CDLL("libstdc++.so.6", mode=os.RTLD_GLOBAL)
    except (OSError, AttributeError):  # not glibc Linux: no such soname (or flag), nothing to promote
        pass
    return require("llama_cpp", "llamacpp", "the llama.cpp throughput backend")


def _setting(key: str, spec: dict, params: dict, default=None):
    return spec.get(key, params.get(key, default))


def _load(arm: str, spec: dict, params: dict, ctx: RunContext):
    """The loaded Llama for this arm's load settings (cached), plus its GGUFInfo."""
    from ...models import gguf

    settings = {k: _setting(k, spec, params) for k in LOAD_KEYS}
    key = ("llamacpp", repr(sorted(settings.items())))
    if key in ctx.cache:
        return ctx.cache[key]
    llama_cpp = import_llama_cpp()
    model_spec = str(settings["model"] or "")
    if not model_spec:
        raise PackError(f"arm '{arm}' has no model; set params.model (a .gguf path or synthetic:tiny-llama)")
    path = gguf.resolve_model(model_spec, seed=int(settings["seed"] or 0), qtype=settings["qtype"] or "F32")
    info = gguf.check_gguf(path, settings["model_sha256"])
    n_ctx = int(settings["n_ctx"] or max(int(params.get("ppl_ctx", 512)), 512))
    threads = int(settings["n_threads"] or os.cpu_count() or 1)
    kw = dict(
        model_path=str(path),
        n_ctx=n_ctx,
        n_batch=int(settings["n_batch"] or params.get("ppl_batch", 512)),
        n_threads=threads,
        n_threads_batch=int(settings["n_threads_batch"] or threads),
        n_gpu_layers=int(
            settings["n_gpu_layers"]
            if settings["n_gpu_layers"] is not None
            else (-1 if ctx.device == "cuda" else 0)
        ),
        seed=int(settings["seed"] or 0),
        verbose=os.environ.get("PACK_LLAMACPP_VERBOSE") == "1",
        logits_all=False,
    )
    if settings["flash_attn"] is not None:
        kw["flash_attn"] = bool(settings["flash_attn"])
    for k in ("type_k", "type_v"):
        if settings[k] is not None:
            if str(settings[k]).lower() not in KV_TYPES:
                raise PackError(
                    f"params.{k} '{settings[k]}' is not a KV cache type; use one of {', '.join(KV_TYPES)}"
                )
            kw[k] = KV_TYPES[str(settings[k]).lower()]
    if settings["use_mmap"] is not None:
        kw["use_mmap"] = bool(settings["use_mmap"])
    t0 = time.perf_counter()
    try:
        llm = llama_cpp.Llama(**kw)
    except (ValueError, RuntimeError) as e:
        raise PackError(f"llama.cpp could not load {path} for arm '{arm}': {e}") from None
    ctx.count("model_loads")
    _close_at_exit(llm)
    ctx.log(
        f"arm {arm}: loaded {path.name} ({info.weight_bytes / 2**20:.1f} MiB of tensors) "
        f"in {time.perf_counter() - t0:.2f}s"
    )
    ctx.provenance.setdefault("llamacpp", {})["version"] = getattr(llama_cpp, "__version__", "?")
    models = ctx.provenance.setdefault("models", {})
    if str(path) not in models:
        models[str(path)] = {
            "sha256": sha256_file(path),
            "bytes": info.file_bytes,
            "arch": info.arch,
            "file_type": info.metadata.get("general.file_type"),
            "name": info.metadata.get("general.name"),
        }
    entry = {"llm": llm, "info": info, "path": path, "settings": kw, "warm": False}
    ctx.cache[key] = entry
    return entry


@functools.lru_cache(maxsize=1)
def _logits_address():
    """llama_get_logits_ith declared to return the address as a plain int (ctypes.c_void_p).

    llama-cpp-python's binding returns a POINTER(c_float), and turning that into an address
    (ctypes.cast) costs ~15 us per token inside the decode loop (measured here, 2026-12-02).
    """
    import ctypes

    import llama_cpp

    proto = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32)
    return proto(("llama_get_logits_ith", llama_cpp.llama_cpp._lib))


def _logits_view(cctx, n_vocab: int, cache: dict):
    """A numpy view of the last output row's logits, rebuilt only when llama.cpp moves its buffer.

    np.ctypeslib.as_array builds a ctypes array type on every call: 5 us warm, 60-80 us when the
    decode has just flushed the CPU caches (measured here, 2026-12-02), most of the old loop's cost.
    """
    import ctypes

    import numpy as np

    addr = _logits_address()(cctx, -1)
    if not addr:
        raise PackError("llama.cpp returned no logits for the last token; its decode did not produce output")
    if cache.get("addr") != addr:
        cache["addr"] = addr
        cache["view"] = np.frombuffer((ctypes.c_float * n_vocab).from_address(addr), dtype=np.float32)
    return cache["view"]


def _close_at_exit(llm) -> None:
    """Free a cached model while the interpreter is whole. The process-wide cache keeps it for the next
    run; left to module teardown, llama-cpp-python's __del__ finds its C bindings gone and prints a
    traceback ("'NoneType' object is not callable") as the process exits. The weak reference keeps
    this from holding a model the cache has already dropped."""
    ref = weakref.ref(llm)

    def close():
        model = ref()
        if model is not None:
            model.close()

    atexit.register(close)


def _greedy_decode(llm, tokens: list[int], n_decode: int) -> dict:
    """Prefill `tokens`, then n_decode greedy single-token steps; llama.cpp's timings and the wall clock.

    The decode loop is the hot path the overhead figures are about, so per step it does only: argmax
    over a view of llama.cpp's logits buffer (taken once after the prefill, checked unmoved at the end),
    two ctypes writes into a prepared one-token batch, llama_decode, llama_synchronize, and two
    perf_counter reads around those two calls and two around the argmax. Those reads split the wall
    clock into the engine's calls (whose excess over llama.cpp's own t_eval is work llama.cpp does before
    its timer starts: batch validation), the greedy sampling (reading the vocabulary's logits, which the
    GPU has just written, so they come from memory, not cache: most of the Python time per step), and
    the harness's own bookkeeping between them.
    """
    import gc

    import llama_cpp

    cctx = llm._ctx.ctx
    n_vocab = llm.n_vocab()
    llm.reset()
    llm._ctx.kv_cache_clear()
    llama_cpp.llama_perf_context_reset(cctx)
    # llama.cpp books a step's time when the context synchronises (on reading logits or explicitly),
    # and a GPU decode returns before it is done: synchronise at both ends of each timed span.
    t0 = time.perf_counter()
    llm.eval(tokens)
    llama_cpp.llama_synchronize(cctx)
    t_prefill = time.perf_counter()
    batch = llm._batch.batch  # llm.eval's own llama_batch, reused for one token at a time
    batch.n_tokens = 1
    batch.seq_id[0][0] = 0
    batch.n_seq_id[0] = 1
    batch.logits[0] = True
    token, pos = batch.token, batch.pos
    decode, sync, clock = llama_cpp.llama_decode, llama_cpp.llama_synchronize, time.perf_counter
    views: dict = {}
    n_past = len(tokens)
    out = []
    engine_s = sample_s = 0.0
    gc_was_on = gc.isenabled()
    gc.disable()  # a collection inside the timed loop would be charged to the harness
    try:
        logits = _logits_view(cctx, n_vocab, views)
        t1 = clock()
        for i in range(n_decode):
            ts = clock()
            tok = int(logits.argmax())
            sample_s += clock() - ts
            out.append(tok)
            token[0] = tok
            pos[0] = n_past + i
            ta = clock()
            rc = decode(cctx, batch)
            sync(cctx)
            engine_s += clock() - ta
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc} at decode step {i}")
        t2 = clock()
    finally:
        if gc_was_on:
            gc.enable()
    # llama.cpp grows its output buffer only when a batch needs more rows than before, so one-token
    # steps after a one-output prefill keep it in place; if it ever moved, the tokens above were
    # read from a stale buffer: say so rather than report them.
    if _logits_address()(cctx, -1) != views["addr"]:
        raise PackError(
            "llama.cpp moved its logits buffer during the decode loop; the greedy tokens are not valid"
        )
    llm.input_ids[n_past : n_past + n_decode] = out  # keep the wrapper's bookkeeping true for later calls
    llm.n_tokens = n_past + n_decode
    perf = llama_cpp.llama_perf_context(cctx)
    if perf.n_eval != n_decode or perf.t_eval_ms <= 0:
        raise PackError(
            f"llama.cpp counted {perf.n_eval} decode steps (expected {n_decode}); its timings cannot be used"
        )
    decode_wall_ms = (t2 - t1) * 1000.0
    engine_ms = engine_s * 1000.0
    sample_ms = sample_s * 1000.0
    return {
        "prefill_ms": round(perf.t_p_eval_ms, 4),
        "decode_tok_s": round(perf.n_eval / perf.t_eval_ms * 1000.0, 4),
        "prefill_wall_ms": round((t_prefill - t0) * 1000.0, 4),
        "decode_wall_tok_s": round(n_decode / (t2 - t1), 4),
        # the greedy argmax, then the harness's own Python between the engine's calls, over llama.cpp's
        # decode time
        "sampling_pct": round(100.0 * sample_ms / perf.t_eval_ms, 4),
        "harness_overhead_pct": round(100.0 * (decode_wall_ms - engine_ms - sample_ms) / perf.t_eval_ms, 4),
        # llama.cpp's work inside llama_decode before its timer starts, over the same
        "engine_untimed_pct": round(100.0 * (engine_ms - perf.t_eval_ms) / perf.t_eval_ms, 4),
        "prompt_tokens": len(tokens),
        "_tokens": out,
    }


def perplexity(llm, tokens: list[int], n_ctx: int, n_batch: int, max_chunks: int) -> dict:
    """ppl = exp(mean NLL) over the second half of each n_ctx chunk; float64 log-softmax."""
    import llama_cpp
    import numpy as np

    n_vocab = llm.n_vocab()
    cctx = llm._ctx.ctx
    chunks = min(len(tokens) // n_ctx, max_chunks)
    if chunks < 1:
        raise PackError(
            f"the perplexity text has {len(tokens)} tokens, fewer than one context of {n_ctx}; "
            "use a longer params.ppl_text or a smaller params.ppl_ctx"
        )
    nll_sum, count = 0.0, 0
    first = n_ctx // 2
    for c in range(chunks):
        chunk = tokens[c * n_ctx : (c + 1) * n_ctx]
        llm.reset()
        llm._ctx.kv_cache_clear()
        logits_rows = []
        for i in range(0, n_ctx, n_batch):
            part = chunk[i : i + n_batch]
            llm._batch.set_batch(batch=part, n_past=i, logits_all=True)
            llm._ctx.decode(llm._batch)
            arr = np.ctypeslib.as_array(llama_cpp.llama_get_logits(cctx), shape=(len(part), n_vocab))
            logits_rows.append(arr.astype(np.float64))  # copy: the buffer is reused by the next decode
        logits = np.concatenate(logits_rows)[first : n_ctx - 1]
        targets = np.asarray(chunk[first + 1 : n_ctx])
        mx = logits.max(axis=1, keepdims=True)
        logz = mx[:, 0] + np.log(np.exp(logits - mx).sum(axis=1))
        nll_sum += float((logz - logits[np.arange(len(targets)), targets]).sum())
        count += len(targets)
    nll = nll_sum / count
    return {"ppl": math.exp(nll), "nll": nll, "ppl_tokens": count, "ppl_chunks": chunks}


class Backend:
    """llama.cpp through llama-cpp-python (see the module doc)."""

    @staticmethod
    def own_gpu_processes() -> int:
        return 1  # this process, when llama.cpp offloads to CUDA; harmless on a CPU build

    @staticmethod
    def prepare(arm: str, spec: dict, params: dict, ctx: RunContext) -> None:
        entry = _load(arm, spec, params, ctx)
        runs = int(params.get("rep_warmup", 0))
        if not entry["warm"]:
            runs += int(params.get("warmup", 1))
            entry["warm"] = True
        if runs:
            tokens = entry["llm"].tokenize(
                params.get("prompt", harness.DEFAULT_PROMPT).encode(), add_bos=True
            )
            for _ in range(runs):
                _greedy_decode(entry["llm"], tokens, int(params.get("n_decode", 32)))

    @staticmethod
    def measure(arm: str, spec: dict, params: dict, ctx: RunContext) -> dict:
        try:
            return Backend._measure(arm, spec, params, ctx)
        except RuntimeError as e:  # llama_decode returned an error code: this arm fails, the others run
            raise PackError(f"arm '{arm}': llama.cpp failed: {e}") from None

    @staticmethod
    def _measure(arm: str, spec: dict, params: dict, ctx: RunContext) -> dict:
        entry = _load(arm, spec, params, ctx)
        llm, info = entry["llm"], entry["info"]
        n_decode = int(params.get("n_decode", 32))
        tokens = llm.tokenize(params.get("prompt", harness.DEFAULT_PROMPT).encode(), add_bos=True)
        res = _greedy_decode(llm, tokens, n_decode)
        generated = res.pop("_tokens")
        digest = hashlib.sha256(",".join(map(str, generated)).encode()).hexdigest()[:16]
        res["bytes_per_token"] = round(
            roofline.gguf_bytes_per_token(info, len(tokens) + n_decode / 2)["total"], 1
        )
        ctx.log(
            f"arm {arm}: prefill {res['prefill_ms']:.2f} ms, {res['decode_tok_s']:.2f} tok/s "
            f"(wall {res['decode_wall_tok_s']:.2f}, sampling {res['sampling_pct']:.2f}%, "
            f"overhead {res['harness_overhead_pct']:.2f}%)"
        )
        res["greedy_tokens_sha"] = digest
        if ctx.rep_index < int(params.get("ppl_reps", 1)):
            text, sha = harness.ppl_text(params)
            # The batch is the context's own n_batch (params.ppl_batch unless the arm sets n_batch).
            ppl = perplexity(
                llm,
                llm.tokenize(text.encode(), add_bos=False),
                int(params.get("ppl_ctx", 512)),
                int(llm.n_batch),
                int(params.get("ppl_chunks", 8)),
            )
            ctx.provenance.setdefault(
                "ppl_text", {"source": params.get("ppl_text", "builtin"), "sha256": sha}
            )
            ctx.log(f"arm {arm}: perplexity {ppl['ppl']:.4f} over {ppl['ppl_tokens']} tokens")
            res.update(ppl=round(ppl["ppl"], 8), nll=round(ppl["nll"], 10), ppl_tokens=ppl["ppl_tokens"])
        return res


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    parse(Params, params, "throughput_llamacpp")
    return harness.run_rep(Backend, params, ctx)


def summarize(params: dict, ctx: RunContext, reps: list[RepResult]) -> RepResult:
    return harness.summarize(params, ctx, reps)
