"""GSM8K local-file checks, the lm-eval task file, and upsert-by-tag (no model, no lm-eval run)."""

import json

import pytest

from pack.errors import ManifestError
from pack.experiments.ecmoe import gsm8k

pytestmark = pytest.mark.ecmoe


def _write(tmp_path, lines):
    p = tmp_path / "gsm8k.jsonl"
    p.write_text("".join((json.dumps(r) if not isinstance(r, str) else r) + "\n" for r in lines))
    return p


def test_a_good_file_counts_its_records(tmp_path):
    assert gsm8k.check_file(_write(tmp_path, gsm8k.synthetic_records(7))) == 7


@pytest.mark.parametrize(
    "record, field",
    [
        ({"question": "q"}, "answer"),
        ({"answer": "1\n#### 1"}, "question"),
        ({"question": "q", "answer": 5}, "answer"),
    ],
)
def test_missing_field_is_named_with_its_line(tmp_path, record, field):
    p = _write(tmp_path, [gsm8k.synthetic_records(1)[0], record])
    with pytest.raises(ManifestError, match=rf"gsm8k.jsonl:2: GSM8K record has no '{field}' field"):
        gsm8k.check_file(p)


def test_answer_without_final_line_and_non_json(tmp_path):
    with pytest.raises(ManifestError, match="no '#### <number>' final line"):
        gsm8k.check_file(_write(tmp_path, [{"question": "q", "answer": "42"}]))
    with pytest.raises(ManifestError, match=r":1: not a JSON object"):
        gsm8k.check_file(_write(tmp_path, ["question: q"]))
    with pytest.raises(ManifestError, match="not found"):
        gsm8k.check_file(tmp_path / "absent.jsonl")


def test_task_yaml_includes_lm_evals_own_gsm8k_cot(tmp_path):
    import yaml

    doc = yaml.safe_load(gsm8k.task_yaml(tmp_path / "d.jsonl", tmp_path / "cache"))
    assert doc["include"].endswith("tasks/gsm8k/gsm8k-cot.yaml")
    assert doc["dataset_path"] == "json" and doc["dataset_kwargs"]["data_files"]["test"] == str(
        tmp_path / "d.jsonl"
    )
    base = yaml.safe_load(open(doc["include"]))
    assert base["num_fewshot"] == 8 and {f["name"] for f in base["filter_list"]} == {
        "strict-match",
        "flexible-extract",
    }


def test_upsert_replaces_the_same_tag_and_keeps_others(tmp_path):
    path = tmp_path / "downstream_results.json"
    gsm8k.upsert(path, {"tag": "baseline", "strict_match": 0.1})
    gsm8k.upsert(path, {"tag": "absmax_int8", "strict_match": 0.2})
    entries = gsm8k.upsert(path, {"tag": "baseline", "strict_match": 0.3})
    assert [(e["tag"], e["strict_match"]) for e in entries] == [("absmax_int8", 0.2), ("baseline", 0.3)]
    assert json.loads(path.read_text()) == entries
    path.write_text("{broken")
    with pytest.raises(ManifestError, match="not valid JSON"):
        gsm8k.upsert(path, {"tag": "x"})
