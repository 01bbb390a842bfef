"""Bad input for ECMoE rows: one sentence naming the problem, exit code 2, no traceback."""

import json
import shutil
from pathlib import Path

import pytest

from pack.cli import main

pytestmark = pytest.mark.ecmoe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A project with the real catalogues and one manifest of bad rows (their data files written here)."""
    (tmp_path / "manifests").mkdir()
    for name in ("hardware.yaml", "images.yaml"):
        shutil.copy(ROOT / "manifests" / name, tmp_path / "manifests" / name)
    no_assistant = tmp_path / "sft_no_assistant.jsonl"
    no_assistant.write_text(
        "".join(
            json.dumps({"id": f"c{i}", "messages": [{"role": "user", "content": "hi"}]}) + "\n"
            for i in range(10)
        )
    )
    bad_gsm8k = tmp_path / "gsm8k_bad.jsonl"
    bad_gsm8k.write_text(
        json.dumps({"question": "How many?", "answer": "#### 3"})
        + "\n"
        + json.dumps({"question": "And?"})
        + "\n"
    )
    base = {
        "model": "synthetic:tiny-qwen3-moe",
        "experts_implementation": "eager",
        "sft_data": "synthetic",
        "max_samples": 2,
        "max_length": 64,
        "batch_size": 2,
        "metric_tokens": 16,
    }
    rows = [
        {
            "id": "dense",
            "experiment": "ecmoe_task2",
            "params": base | {"model": "synthetic:tiny-llama", "method": "absmax", "bits": 8},
        },
        {"id": "bits3", "experiment": "ecmoe_task2", "params": base | {"method": "absmax", "bits": 3}},
        {
            "id": "mode",
            "experiment": "ecmoe_task2",
            "params": base | {"method": "absmax", "bits": 8, "router_modes": ["sideways"]},
        },
        {
            "id": "noassist",
            "experiment": "ecmoe_task2",
            "params": base | {"method": "none", "sft_data": str(no_assistant)},
        },
        {
            "id": "gsm8k",
            "experiment": "ecmoe_gsm8k",
            "params": {
                "model": "synthetic:tiny-qwen3-moe",
                "method": "none",
                "gsm8k_data": str(bad_gsm8k),
                "limit": 1,
            },
        },
    ]
    import yaml

    # Rows whose params their Params model refuses never load (pack validate finds them); the rest
    # fail when they run.
    for paper, ids in (
        ("bad", ("dense", "noassist", "gsm8k")),
        ("badbits", ("bits3",)),
        ("badmode", ("mode",)),
    ):
        doc = {
            "paper": paper,
            "title": "bad rows",
            "source": "tests",
            "rows": [r | {"cell": r["id"], "target": {"hardware": "cpu"}} for r in rows if r["id"] in ids],
        }
        (tmp_path / "manifests" / f"{paper}.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("PACK_HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "row, sentence",
    [
        (
            "dense",
            r"synthetic:tiny-llama \(LlamaForCausalLM\) has no MoE blocks: its feed-forward modules are "
            r"LlamaMLP x4",
        ),
        (
            "badbits:bits3",
            r"badbits.yaml:\d+: row 'bits3': 'params.bits': params.bits = 3 is not supported; "
            r".* one of 2, 4, 8",
        ),
        (
            "badmode:mode",
            r"badmode.yaml:\d+: row 'mode': 'params.router_modes': 'sideways' is not a router mode",
        ),
        (
            "noassist",
            r"sft_no_assistant.jsonl:\d+ \(record id 'c\d'\): record has no assistant turn \(roles: user\)",
        ),
        ("gsm8k", r"gsm8k_bad.jsonl:2: GSM8K record has no 'answer' field"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(project, capsys, row, sentence):
    import re

    with pytest.raises(SystemExit) as exc:
        main(["run", row if ":" in row else f"bad:{row}", "--out", str(project / "runs")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("pack: error:")]
    assert len(lines) == 1 and re.search(sentence, lines[0]), err[-2000:]
    assert "Traceback" not in err
