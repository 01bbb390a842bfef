"""SFT conversations for perplexity, the way the journal settled on it (2026-02-15 / 2026-02-16).

    file (JSONL, one record per line: {"messages": [{"role", "content"}, ...], "id"?: ...})
      -> deterministic 80/10/10 split of all records, seed 42 (numpy RandomState permutation)
      -> the first `max_samples` records of the requested split, in permuted order
      -> chat template, truncated to `max_length` tokens; labels = input ids on the tokens each
         assistant turn adds after its generation prompt (content and end-of-turn marker),
         -100 everywhere else (system, user, template markup)

The file is read twice, streaming (count, then the chosen lines), so a 2.15 M-record export of
Dolci-Instruct-SFT is never held in memory. The author's own shuffle RNG is not in the journal, so
the test split here is the same size and seed but not necessarily the same records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...errors import ManifestError
from ...fsio import sha256_file

SPLITS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # -100 where no loss is taken

    @property
    def n_response(self) -> int:
        """Tokens whose prediction is scored: labels[1:] != -100 (a label at position 0 has no context)."""
        return sum(1 for v in self.labels[1:] if v != -100)


def count_records(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                n += 1
    return n


def split_indices(n: int, split: str, seed: int = 42) -> list[int]:
    """Record indices of `split` ('train' | 'val' | 'test') of n records, in permuted order."""
    import numpy as np

    if split not in SPLITS:
        raise ManifestError(f"params.split = {split!r}; use train, val or test")
    perm = np.random.RandomState(seed).permutation(n)
    lo, hi = SPLITS[split]
    return [int(i) for i in perm[int(lo * n) : int(hi * n)]]


def read_records(path: Path, wanted: list[int]) -> list[tuple[int, dict]]:
    """[(line number, record)] for record indices `wanted`, in that order (one streaming pass)."""
    need = set(wanted)
    found: dict[int, tuple[int, dict]] = {}
    index = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            if index in need:
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    raise ManifestError(
                        f"{path}:{lineno}: not a JSON object ({e.msg}); the SFT file must be JSONL"
                    ) from None
                found[index] = (lineno, rec)
            index += 1
    return [found[i] for i in wanted]


def check_record(path: Path, lineno: int, rec) -> list[dict]:
    """The record's messages, or a ManifestError naming the record and what is wrong with it."""
    where = f"{path}:{lineno}" + (
        f" (record id {rec.get('id')!r})" if isinstance(rec, dict) and rec.get("id") is not None else ""
    )
    if not isinstance(rec, dict) or not isinstance(rec.get("messages"), list):
        raise ManifestError(
            f"{where}: record has no 'messages' list; each line needs "
            '{"messages": [{"role": ..., "content": ...}, ...]}'
        )
    msgs = rec["messages"]
    for j, m in enumerate(msgs):
        if not isinstance(m, dict) or "role" not in m:
            raise ManifestError(f"{where}: message {j} has no 'role'")
    if not any(m["role"] == "assistant" for m in msgs):
        roles = ", ".join(sorted({str(m["role"]) for m in msgs})) or "none"
        raise ManifestError(
            f"{where}: record has no assistant turn (roles: {roles}); SFT perplexity is taken on "
            "assistant tokens only, so every record needs at least one"
        )
    return [{"role": m["role"], "content": m.get("content") or ""} for m in msgs]


def _template(tok, messages, generation_prompt: bool) -> list[int]:
    # return_dict=False: transformers >= 5 returns a BatchEncoding otherwise (the journal's 2026-02-16 bug).
    return list(
        tok.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=False
        )
    )


def tokenize(tok, messages: list[dict], max_length: int) -> Example | None:
    """Chat-template ids with assistant-only labels; None if truncation leaves no response token
    or the template does not tokenize turn by turn as a prefix of the whole (then spans are unknowable)."""
    ids = _template(tok, messages, False)
    labels = [-100] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(_template(tok, messages[:i], True))
        upto = _template(tok, messages[: i + 1], False)
        if ids[: len(upto)] != upto:
            return None
        labels[start : len(upto)] = ids[start : len(upto)]
    ex = Example(ids[:max_length], labels[:max_length])
    return ex if ex.n_response > 0 else None


def load_examples(
    path: Path, tok, *, split: str, seed: int, max_samples: int, max_length: int
) -> tuple[list[Example], dict]:
    """Tokenized examples of one split and facts about them (counts, file sha256)."""
    if not path.is_file():
        raise ManifestError(
            f"SFT file {path} not found; set params.sft_data to a JSONL export "
            "(see docs/ecmoe.md) or to 'synthetic'"
        )
    n = count_records(path)
    if n == 0:
        raise ManifestError(f"SFT file {path} is empty")
    chosen = split_indices(n, split, seed)[:max_samples]
    if not chosen:
        raise ManifestError(
            f"SFT file {path} has {n} records, so its 80/10/10 split leaves none in '{split}'; "
            "use a larger file"
        )
    examples, skipped = [], 0
    for lineno, rec in read_records(path, chosen):
        ex = tokenize(tok, check_record(path, lineno, rec), max_length)
        if ex is None:
            skipped += 1
        else:
            examples.append(ex)
    if not examples:
        raise ManifestError(
            f"SFT file {path}: none of the {len(chosen)} {split}-split records has an assistant token "
            f"within max_length={max_length}; raise params.max_length"
        )
    facts = {
        "records_in_file": n,
        "split": split,
        "split_seed": seed,
        "records_used": len(examples),
        "records_skipped": skipped,
        "file_sha256": sha256_file(path),
        "max_length": max_length,
    }
    return examples, facts


# ------------------------------------------------------------------ a local stand-in for Dolci
def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """Deterministic multi-turn conversations in the Dolci-Instruct-SFT message format."""
    import random

    from ...data.documents import generate_document

    out = []
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        doc = generate_document(seed * 10_007 + i, n_words=rng.randint(60, 220)).split(". ")
        msgs = []
        if rng.random() < 0.5:
            msgs.append(
                {"role": "system", "content": "You are a careful assistant who answers in plain prose."}
            )
        k = 0
        for _ in range(rng.randint(1, 3)):
            ask = ". ".join(doc[k : k + 2]) or "Tell me about the committee."
            reply = ". ".join(doc[k + 2 : k + 2 + rng.randint(2, 5)]) or "The committee reviewed the budget."
            k += 6
            msgs.append({"role": "user", "content": f"Summarise what happened next: {ask}."})
            msgs.append({"role": "assistant", "content": reply.strip() + "."})
        out.append({"id": f"synthetic-{seed}-{i}", "messages": msgs})
    return out


def write_jsonl(records: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
