"""The llama.cpp backend on a tiny GGUF the pack writes itself (CPU, no download)."""

import dataclasses
import json
import subprocess
import sys

import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="build it with `make llamacpp` (pack[llamacpp])")

from pack.manifest import deep_merge, get_manifest  # noqa: E402
from pack.models.gguf import check_gguf, synthetic_gguf  # noqa: E402
from pack.run import execute  # noqa: E402
from pack.verify import verify_run  # noqa: E402

pytestmark = pytest.mark.throughput


@pytest.fixture(scope="module")
def tiny_gguf():
    return synthetic_gguf("tiny-llama")


def run_smoke(tmp_path, reps=3, **params):
    from pack.results import CACHE

    for key in [k for k in CACHE if isinstance(k, tuple) and k[0] == "llamacpp"]:
        del CACHE[key]
    m = get_manifest("paperB")
    rr = m.row("llamacpp-null").at("smoke")
    rr = dataclasses.replace(rr, reps=reps, params=deep_merge(rr.params, params))
    run_dir = execute(m, rr, runs_root=tmp_path / "runs", hw_name="cpu")
    return run_dir, json.loads((run_dir / "run.json").read_text())


def test_the_gguf_writer_matches_transformers(tiny_gguf):
    import numpy as np
    import torch

    from pack.models import synthetic

    info = check_gguf(tiny_gguf)
    assert info.arch == "llama" and info.get("block_count") == 4 and len(info.tensor_bytes) == 2 + 4 * 9 + 1
    llm = llama_cpp.Llama(
        model_path=str(tiny_gguf), n_ctx=256, n_threads=1, verbose=False, logits_all=True, type_k=0, type_v=0
    )  # an F32 KV cache: compare the weights, not F16 rounding
    text = "Hello, the quick brown fox jumps over the lazy dog and runs into the night"
    toks = llm.tokenize(text.encode(), add_bos=False)
    assert toks == synthetic.build_tokenizer()(text, add_special_tokens=False)["input_ids"]
    llm.eval(toks)
    ours = np.array(llm.scores[: len(toks)])
    with torch.no_grad():
        ref = synthetic.build_model("tiny-llama")(torch.tensor([toks])).logits[0].numpy()
    assert np.abs(ours - ref).max() < 1e-5


def test_llamacpp_null_smoke_end_to_end(tmp_path, tiny_gguf):
    run_dir, run = run_smoke(tmp_path)
    assert run["status"] == "complete" and run["errors"] == {}
    m = run["metrics"]
    for arm in ("baseline", "mcr"):
        ppl = m[f"{arm}.ppl"]["values"]
        assert len(ppl) == 3 and len({round(p, 4) for p in ppl}) == 1  # equal to 4 places across repetitions
        assert len(set(m[f"{arm}.greedy_tokens_sha"]["values"])) == 1
        assert m[f"{arm}.decode_tok_s"]["n"] == 3 and min(m[f"{arm}.decode_tok_s"]["values"]) > 0
        assert all(v > 0 for v in m[f"{arm}.prefill_ms"]["values"])
        wall, own = m[f"{arm}.decode_wall_tok_s"]["values"], m[f"{arm}.decode_tok_s"]["values"]
        assert all(w <= o for w, o in zip(wall, own, strict=True))  # the wall clock includes llama.cpp's time
        assert 0 < m[f"{arm}.roofline_fraction"]["values"][0] < 1.5
        # the split of the wall clock: the harness's Python and llama.cpp's own untimed host work
        assert all(v >= 0 for v in m[f"{arm}.harness_overhead_pct"]["values"])
        assert m[f"{arm}.engine_untimed_pct"]["n"] == 3
    assert m["baseline.ppl"]["values"] == m["mcr.ppl"]["values"]
    assert run["counters"]["model_loads"] == 1  # one load serves both identical arms and all repetitions
    assert run["experiment_provenance"]["llamacpp"]["version"] == llama_cpp.__version__
    assert len(run["experiment_provenance"]["ppl_text"]["sha256"]) == 64
    outputs = {p.name for p in (run_dir / "summary").iterdir()}
    assert "llamacpp_null_summary.json" in outputs
    v = verify_run(run_dir)
    by = {mv.metric: mv for mv in v.metrics}
    assert by["baseline.ppl"].verdict == "PASS", by["baseline.ppl"].why  # the blessed CPU value, 4 decimals
    assert by["baseline.greedy_tokens_sha"].verdict == "PASS"


def test_arms_with_different_settings_load_separately(tmp_path, tiny_gguf):
    _, run = run_smoke(tmp_path, reps=2, arms={"baseline": {}, "mcr": {"n_batch": 32}}, ppl_reps=1)
    assert run["counters"]["model_loads"] == 2
    assert run["metrics"]["baseline.ppl"]["values"][0] == pytest.approx(
        run["metrics"]["mcr.ppl"]["values"][0], abs=5e-4
    )


@pytest.mark.parametrize(
    "content, says",
    [(b"<html>503 Service Unavailable</html>", "HTML/XML page"), (None, "does not exist")],
    ids=["html", "missing"],
)
def test_a_bad_model_file_is_an_error_naming_it(tmp_path, content, says):
    bad = tmp_path / "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    if content is not None:
        bad.write_bytes(content)
    run_dir, run = run_smoke(tmp_path, reps=1, arms={"baseline": {"model": str(bad)}, "mcr": {}})
    assert set(run["errors"]) == {"baseline"} and str(bad) in run["errors"]["baseline"]
    assert says in run["errors"]["baseline"]
    assert run["metrics"]["mcr.decode_tok_s"]["n"] == 1  # the other arm still ran
    assert verify_run(run_dir).verdict == "ERROR"


def test_cpu_contention_flips_the_llamacpp_verdict(tmp_path, tiny_gguf):
    burn = "import time\nt = time.time()\nwhile time.time() - t < 60: pass"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    try:
        run_dir, run = run_smoke(tmp_path, reps=2, ppl_reps=1)
    finally:
        for b in burners:
            b.kill()
            b.wait()
    assert any("CPU cores during the measurement" in c for c in run["contamination"])
    v = verify_run(run_dir)
    assert v.verdict == "CONTAMINATED" and "rerun" in v.why


def test_the_decode_loop_gives_the_tokens_and_step_count_of_llama_eval(tiny_gguf):
    """The harness's lean loop (a reused one-token batch, a cached logits view) decodes exactly what
    Llama.eval + argmax over a fresh view of the logits does, and llama.cpp counts every step."""
    import numpy as np

    from pack.experiments.throughput.llamacpp import _greedy_decode

    llm = llama_cpp.Llama(model_path=str(tiny_gguf), n_ctx=256, n_threads=1, verbose=False)
    prompt = llm.tokenize(b"Hello, the quick brown fox", add_bos=True)
    r = _greedy_decode(llm, prompt, 40)
    cctx = llm._ctx.ctx
    llm.reset()
    llm._ctx.kv_cache_clear()
    llm.eval(prompt)
    ref = []
    for _ in range(40):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(cctx, -1), shape=(llm.n_vocab(),))
        ref.append(int(logits.argmax()))
        llm.eval([ref[-1]])
    assert r["_tokens"] == ref
    assert len(set(ref)) > 1  # a loop stuck on one token would prove nothing
    assert r["harness_overhead_pct"] >= 0 and r["decode_tok_s"] > 0
    again = _greedy_decode(llm, prompt, 40)  # after the reference's own Llama.eval calls
    assert again["_tokens"] == ref
