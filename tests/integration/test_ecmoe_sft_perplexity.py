"""SFT tokenization with assistant-only labels, the seed-42 split, and the exactness of the
response-token count and perplexity (against transformers' own loss)."""

import json
import math

import pytest
import torch

from pack.errors import ManifestError
from pack.experiments.ecmoe import sft
from pack.experiments.ecmoe.perplexity import evaluate

pytestmark = pytest.mark.ecmoe


@pytest.fixture(scope="module")
def tok():
    from pack.models.synthetic import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="module")
def model():
    from pack.models.synthetic import build_model

    m = build_model("tiny-qwen3-moe")
    m.set_experts_implementation("eager")
    return m


def test_split_is_deterministic_disjoint_and_80_10_10():
    parts = {s: sft.split_indices(1000, s, 42) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [800, 100, 100]
    assert sorted(sum(parts.values(), [])) == list(range(1000))
    assert parts["test"] == sft.split_indices(1000, "test", 42) != sft.split_indices(1000, "test", 43)


def test_labels_cover_exactly_the_assistant_turns(tok):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say the committee met."},
        {"role": "assistant", "content": "The committee met."},
        {"role": "user", "content": "And then?"},
        {"role": "assistant", "content": "It approved the budget."},
    ]
    ex = sft.tokenize(tok, msgs, 10_000)
    labelled = tok.decode([t for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != -100])
    assert labelled == "The committee met.<|im_end|>\nIt approved the budget.<|im_end|>\n"
    assert "Be brief" not in labelled and "assistant" not in labelled
    cut = sft.tokenize(tok, msgs, 12)  # only the system and user turns fit
    assert cut is None


def test_record_without_assistant_turn_is_named(tmp_path, tok):
    path = tmp_path / "sft.jsonl"
    recs = sft.synthetic_records(9)
    recs[4] = {"id": "conv-77", "messages": [{"role": "user", "content": "hello"}]}
    sft.write_jsonl(recs, path)
    # Find which split holds record 4, so loading reads it.
    split = next(s for s in ("train", "val", "test") if 4 in sft.split_indices(9, s, 42))
    with pytest.raises(
        ManifestError,
        match=r"sft.jsonl:5 \(record id 'conv-77'\): record has no assistant turn \(roles: user\)",
    ):
        sft.load_examples(path, tok, split=split, seed=42, max_samples=100, max_length=512)
    path.write_text((json.dumps({"text": "x"}) + "\n") * 10)
    with pytest.raises(ManifestError, match="no 'messages' list"):
        sft.load_examples(path, tok, split="train", seed=42, max_samples=1, max_length=512)
    sft.write_jsonl(sft.synthetic_records(1), path)
    with pytest.raises(ManifestError, match="leaves none in 'val'"):
        sft.load_examples(path, tok, split="val", seed=42, max_samples=1, max_length=512)


def test_perplexity_is_exact_and_batch_independent(tmp_path, tok, model):
    path = sft.write_jsonl(sft.synthetic_records(30), tmp_path / "sft.jsonl")
    examples, facts = sft.load_examples(path, tok, split="train", seed=42, max_samples=5, max_length=120)
    assert facts["records_used"] == 5 and len(facts["file_sha256"]) == 64
    one = evaluate(model, examples, batch_size=1, pad_id=tok.pad_token_id)
    three = evaluate(model, examples, batch_size=3, pad_id=tok.pad_token_id)
    assert one["n_response_tokens"] == three["n_response_tokens"] == sum(e.n_response for e in examples)
    assert three["ppl"] == pytest.approx(one["ppl"], rel=1e-5)
    ex = examples[0]
    with torch.no_grad():
        hf = model(input_ids=torch.tensor([ex.input_ids]), labels=torch.tensor([ex.labels])).loss
    assert evaluate(model, [ex], batch_size=1, pad_id=tok.pad_token_id)["ppl"] == pytest.approx(
        math.exp(float(hf)), rel=1e-5
    )
