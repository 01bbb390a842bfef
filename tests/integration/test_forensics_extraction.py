"""Extraction on a real tiny Qwen3-MoE (CPU): the layer / key / position conventions against
transformers' own outputs, prompts cut to exact token counts, and the model sources."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pack.errors import PackError  # noqa: E402
from pack.experiments.forensics.extraction import ExtractionSpec, greedy_decode  # noqa: E402
from pack.experiments.forensics.prompts import build_batch, build_prompt  # noqa: E402
from pack.models import sources, synthetic  # noqa: E402

pytestmark = pytest.mark.forensics


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return sources.load_causal_lm(
        "synthetic:tiny-qwen3-moe", dtype="bfloat16", device="cpu", attention="sdpa"
    )


@pytest.fixture(scope="module")
def prompt(tiny):
    return build_prompt(tiny.tokenizer, 40)


SPEC = ExtractionSpec(layers=(1, 2, 4, 12, 14), positions=(-3, -2, -1), top_k=10, steps=6)


def test_hooked_signals_equal_transformers_outputs_at_prefill(tiny, prompt):
    ids = torch.tensor([prompt.token_ids])
    sig = greedy_decode(tiny.model, ids, SPEC)
    with torch.no_grad():
        out = tiny.model(ids, output_hidden_states=True, use_cache=True)
    assert len(out.hidden_states) == 15  # index 0 = embedding output, 1..14 = decoder blocks
    for k in SPEC.layers:  # layer_k == output_hidden_states[k]; k = 14 is after the final norm
        assert torch.equal(sig.hidden[k][:3], out.hidden_states[k][0, -3:]), k
    # transformers ties hidden_states[-1] to the final RMSNorm's output, and so is our layer_14:
    # the last decoder block's own (pre-norm) output, normed, gives it
    seen = []
    h = tiny.model.model.layers[13].register_forward_hook(lambda m, a, o: seen.append(o))
    with torch.no_grad():
        tiny.model(ids)
    h.remove()
    with torch.no_grad():
        assert not torch.equal(seen[0][0, -3:], sig.hidden[14][:3])
        assert torch.equal(tiny.model.model.norm(seen[0])[0, -3:], sig.hidden[14][:3])
    cache = out.past_key_values
    for k in SPEC.layers:  # keys: cache layer k-1, after RoPE, heads concatenated
        ref = cache.layers[k - 1].keys[0, :, -3:, :].permute(1, 0, 2).reshape(3, -1)
        assert torch.equal(sig.keys[k][:3], ref), k
    lp = torch.log_softmax(out.logits[0, -3:].float(), dim=-1).topk(10)
    assert torch.equal(sig.top_ids[:3], lp.indices)
    assert torch.allclose(sig.top_logprobs[:3], lp.values, atol=0, rtol=0)


def test_shapes_tokens_and_no_effect_on_generation(tiny, prompt):
    ids = torch.tensor([prompt.token_ids])
    sig = greedy_decode(tiny.model, ids, SPEC)
    plain = greedy_decode(tiny.model, ids, None, steps=SPEC.steps)
    gen = tiny.model.generate(ids, max_new_tokens=SPEC.steps, min_new_tokens=SPEC.steps, do_sample=False)
    assert sig.tokens.tolist() == plain.tokens.tolist() == gen[0, ids.shape[1] :].tolist()
    assert sig.hidden[1].shape == (8, 64) and sig.keys[14].shape == (8, 32)  # P = 6 + 3 - 1; 2 KV heads x 16
    assert sig.hidden[1].dtype == torch.bfloat16 and sig.top_logprobs.dtype == torch.float32
    assert (sig.top_logprobs[:, :-1] >= sig.top_logprobs[:, 1:]).all()
    # the decode-step rows are the positions fed in: recomputing the whole sequence reproduces them
    # up to prefill-vs-decode kernel differences (why the convention stores what the cache computed)
    full = torch.cat([ids, sig.tokens[None, :-1]], dim=1)
    with torch.no_grad():
        rec = tiny.model(full, output_hidden_states=True)
    assert torch.allclose(rec.hidden_states[4][0, -8:].float(), sig.hidden[4].float(), atol=0.05)


def test_batches_are_same_length_different_documents_and_row0_is_the_reference(tiny, prompt):
    batch = build_batch(tiny.tokenizer, 40, 4)
    assert len({len(p.token_ids) for p in batch}) == 1
    assert len({p.token_ids for p in batch}) == 4 and batch[0].token_ids == prompt.token_ids
    sig = greedy_decode(tiny.model, torch.tensor([p.token_ids for p in batch]), SPEC)
    assert sig.batch_tokens.shape == (4, SPEC.steps) and sig.hidden[1].shape[0] == SPEC.n_unique


def test_prompt_is_chat_template_plus_exactly_n_document_tokens(tiny):
    for n in (17, 64):
        p = build_prompt(tiny.tokenizer, n)
        frame = build_prompt(tiny.tokenizer, 1)
        assert len(p.token_ids) - len(frame.token_ids) == n - 1
        assert p.text.startswith("<|im_start|>user\n") and p.text.endswith("<|im_start|>assistant\n")
        assert "Provide a summary of the document above." in p.text


def test_document_files_text_and_pdf_and_too_short(tiny, tmp_path):
    txt = tmp_path / "doc.txt"
    txt.write_text("The committee reviewed the annual budget. " * 40)
    assert build_prompt(tiny.tokenizer, 50, documents=[str(txt)]).document == str(txt)
    with pytest.raises(PackError, match=r"has only \d+ tokens with this tokenizer but prompt_tokens is 5000"):
        build_prompt(tiny.tokenizer, 5000, documents=[str(txt)])
    with pytest.raises(PackError, match="needs 2 different documents"):
        build_batch(tiny.tokenizer, 10, 2, documents=[str(txt)])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    fig.text(0.05, 0.5, "The river authority measured the flood defences after heavy rain.")
    pdf = tmp_path / "doc.pdf"
    fig.savefig(pdf)
    plt.close(fig)
    p = build_prompt(tiny.tokenizer, 8, documents=[str(pdf)])
    assert "river authority" in p.text
    with pytest.raises(PackError, match="does not exist"):
        build_prompt(tiny.tokenizer, 8, documents=[str(tmp_path / "missing.pdf")])


def test_local_checkpoint_path_loads_the_same_weights(tmp_path, tiny, prompt):
    path = synthetic.save("tiny-qwen3-moe", tmp_path / "ckpt", dtype="bfloat16")
    local = sources.load_causal_lm(str(path), dtype="bfloat16", device="cpu", attention="sdpa")
    assert local.info["kind"] == "local"
    assert sources.weights_fingerprint(local.model) == sources.weights_fingerprint(tiny.model)
    ids = torch.tensor([prompt.token_ids])
    a, b = greedy_decode(tiny.model, ids, SPEC), greedy_decode(local.model, ids, SPEC)
    assert torch.equal(a.hidden[14], b.hidden[14]) and a.tokens.tolist() == b.tokens.tolist()


def test_bad_model_sources_are_one_sentence():
    with pytest.raises(PackError, match="model path '/nonexistent/ckpt' does not exist"):
        sources.load_causal_lm("/nonexistent/ckpt")
    with pytest.raises(PackError, match="unknown synthetic model 'tiny-qwen'; did you mean"):
        sources.check_source("synthetic:tiny-qwen")
    with pytest.raises(PackError, match="flash_attention_2' needs the flash-attn package and a CUDA GPU"):
        sources.resolve_attention("flash_attention_2", "cpu")
    assert sources.resolve_attention("auto", "cpu") == "sdpa"


def test_compiled_decode_compiles_a_fixed_number_of_graphs_and_extracts_the_same_signals():
    """The hooks must not make dynamo recompile per decode step (a growing list did: one graph per
    step until the recompile limit, then eager steps under the compile label)."""
    import torch._dynamo

    llama = sources.load_causal_lm("synthetic:tiny-llama", dtype="float32", device="cpu", attention="sdpa")
    graphs = []

    def counting_backend(gm, example_inputs):  # eager FX: the numerics stay the eager ones
        graphs.append(gm)
        return gm.forward

    spec = ExtractionSpec(layers=(1, 2), positions=(-3, -2, -1), top_k=5, steps=14)
    ids = torch.tensor([build_prompt(llama.tokenizer, 30).token_ids])
    eager = greedy_decode(llama.model, ids, spec)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(llama.model, backend=counting_backend)
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            first = greedy_decode(compiled, ids, spec)
            n_first = len(graphs)
            again = greedy_decode(compiled, ids, spec)  # fresh hooks, same graphs
    finally:
        torch._dynamo.reset()
    assert n_first <= 4, f"{n_first} graphs for {spec.steps} steps: the extraction recompiles per step"
    assert len(graphs) == n_first
    for sig in (first, again):
        assert torch.equal(sig.tokens, eager.tokens)
        for k in spec.layers:
            assert torch.equal(sig.hidden[k], eager.hidden[k]) and torch.equal(sig.keys[k], eager.keys[k])
        assert torch.equal(sig.top_ids, eager.top_ids)


def test_a_model_that_loads_another_attention_than_asked_is_refused(monkeypatch):
    """The attention variable must carry the kernel it names: a model that comes back with another
    implementation (a transformers fallback) is an error, not a mislabelled configuration."""
    real = synthetic.build_model

    def falls_back(*args, **kwargs):
        model = real(*args, **kwargs)
        model.config._attn_implementation = "eager"  # what a silent fallback would leave behind
        return model

    monkeypatch.setattr(synthetic, "build_model", falls_back)
    with pytest.raises(PackError, match="asked for attention 'sdpa' but transformers loaded 'eager'"):
        sources.load_causal_lm("synthetic:tiny-llama", dtype="float32", device="cpu", attention="sdpa")
