"""Prompts: the model's chat template around a document cut to exactly N tokens, then a request.

    <chat prefix> + document[:N tokens] + "\\n\\n" + request + <chat suffix, generation prompt>

The template is rendered once with a placeholder in place of the document; prefix and suffix are
tokenized on their own and the document's first N token ids are spliced in between. So every
prompt built for one tokenizer and N has the same length, whatever the document: batch neighbours
(exp1) are different documents of the same token length and no padding is ever needed.

Documents: "builtin" (pack.data.documents, deterministic, index 0 is the reference sequence and
1, 2, ... its batch neighbours) or a list of files (.pdf through pypdf, anything else as UTF-8 text).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ...errors import PackError

PLACEHOLDER = "\ue000DOCUMENT\ue000"  # a private-use marker no tokenizer merges with its neighbours
DEFAULT_REQUEST = "Provide a summary of the document above."


@dataclass(frozen=True)
class Prompt:
    """One tokenized prompt. token_ids: prompt length = prefix + n_doc_tokens + suffix."""

    token_ids: tuple[int, ...]
    text: str
    document: str  # where the document came from ("builtin:0", a file path)
    n_doc_tokens: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(",".join(map(str, self.token_ids)).encode()).hexdigest()


def read_document(path: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise PackError(
            f"prompt document '{path}' does not exist; give a .pdf or text file, or use documents: builtin"
        )
    if p.suffix.lower() == ".pdf":
        from ...errors import require

        pypdf = require("pypdf", "hf", "PDF prompt documents")
        try:
            reader = pypdf.PdfReader(str(p))
            text = "\n".join(page.extract_text() or "" for page in reader.pages)
        except Exception as e:  # pypdf raises many kinds for damaged files
            raise PackError(
                f"prompt document '{path}' could not be read as a PDF ({type(e).__name__}: {e})"
            ) from None
    else:
        text = p.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise PackError(f"prompt document '{path}' has no extractable text (a scanned PDF needs OCR first)")
    return text


def document_ids(tokenizer, documents, index: int, n_tokens: int) -> tuple[list[int], str]:
    """The first n_tokens token ids of document `index` and a name for it."""
    if documents in (None, "builtin"):
        from ...data.documents import generate_document

        n_words = max(64, n_tokens)
        while True:  # the generator is deterministic, so a longer draw extends the same text
            ids = tokenizer(generate_document(index, n_words=n_words), add_special_tokens=False)["input_ids"]
            if len(ids) >= n_tokens:
                return ids[:n_tokens], f"builtin:{index}"
            n_words *= 2
    if isinstance(documents, str):
        documents = [documents]
    if index >= len(documents):
        raise PackError(
            f"params.documents lists {len(documents)} file(s) but this configuration needs "
            f"{index + 1} different documents (batch neighbours); add more files"
        )
    path = documents[index]
    ids = tokenizer(read_document(path), add_special_tokens=False)["input_ids"]
    if len(ids) < n_tokens:
        raise PackError(
            f"prompt document '{path}' has only {len(ids)} tokens with this tokenizer but "
            f"prompt_tokens is {n_tokens}; use a longer document or lower prompt_tokens"
        )
    return ids[:n_tokens], path


def chat_frame(tokenizer, request: str) -> tuple[list[int], list[int]]:
    """Token ids before and after the document in the chat-templated user turn."""
    messages = [{"role": "user", "content": f"{PLACEHOLDER}\n\n{request}"}]
    if getattr(tokenizer, "chat_template", None):
        # enable_thinking=False: Qwen3's template otherwise leaves the model in thinking mode;
        # templates that do not know the flag ignore it.
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
    else:
        text = messages[0]["content"]
    before, sep, after = text.partition(PLACEHOLDER)
    if not sep:
        raise PackError(
            "the tokenizer's chat template dropped the user message; check the checkpoint's chat_template"
        )
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
    return enc(before), enc(after)


def build_prompt(
    tokenizer, n_tokens: int, *, documents="builtin", index: int = 0, request: str = DEFAULT_REQUEST
) -> Prompt:
    if n_tokens < 1:
        raise PackError(f"prompt_tokens must be at least 1 (got {n_tokens})")
    before, after = chat_frame(tokenizer, request)
    doc, name = document_ids(tokenizer, documents, index, n_tokens)
    ids = tuple(before + doc + after)
    return Prompt(token_ids=ids, text=tokenizer.decode(list(ids)), document=name, n_doc_tokens=n_tokens)


def build_batch(
    tokenizer, n_tokens: int, batch_size: int, *, documents="builtin", request: str = DEFAULT_REQUEST
) -> list[Prompt]:
    """batch_size prompts of identical length; element 0 is the reference (exp0's) prompt."""
    prompts = [
        build_prompt(tokenizer, n_tokens, documents=documents, index=i, request=request)
        for i in range(batch_size)
    ]
    lengths = {len(p.token_ids) for p in prompts}
    if len(lengths) != 1:  # cannot happen with splicing; a guard because padding would change the question
        raise PackError(f"batch prompts have different lengths {sorted(lengths)}; refusing to pad")
    return prompts
