"""Docs tested against the code: every `pack` command and option the README and docs/ show exists
(in the spirit of sqlite-utils' test_docs.py), so a renamed flag cannot leave the docs behind."""

from __future__ import annotations

import re

import click
import pytest

from pack.cli import cli
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# `pack …` at the start of a code line (after an optional prompt), up to a comment or the line's end.
COMMAND = re.compile(r"^\s*(?:\$\s+)?(?:\.venv/bin/|\$\(BIN\)/)?pack\s+([^#\n`]*)", re.MULTILINE)


def _code(text: str) -> str:
    """Fenced code blocks only: prose may say 'pack' as a word."""
    return "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL))


def documented() -> list[tuple[str, str, list[str]]]:
    out = []
    for doc in DOCS:
        for m in COMMAND.finditer(_code(doc.read_text(encoding="utf-8"))):
            words = m.group(1).split()
            if words:
                out.append((doc.name, m.group(0).strip(), words))
    return out


def _resolve(words: list[str]) -> tuple[click.Command | None, list[str]]:
    cmd: click.Command = cli
    rest = list(words)
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.commands.get(rest[0])
        if sub is None and "start" in cmd.commands:  # `pack launch ROW …` is `pack launch start ROW …`
            return cmd.commands["start"], rest
        if sub is None:
            return (cmd if cmd is not cli else None), rest
        cmd, rest = sub, rest[1:]
    return cmd, rest


def _options(cmd: click.Command) -> set[str]:
    names = {"-h", "--help", "--version"}
    for p in cmd.params:
        names.update(getattr(p, "opts", []))
        names.update(getattr(p, "secondary_opts", []))
    return names


def test_the_docs_show_commands():
    assert len(documented()) >= 10  # the parser finds the README's CLI tour


@pytest.mark.parametrize("where,line,words", documented(), ids=lambda x: x if isinstance(x, str) else None)
def test_documented_command_and_options_exist(where, line, words):
    cmd, rest = _resolve(words)
    assert cmd is not None and cmd is not cli, f"{where}: '{line}': no such command '{words[0]}'"
    flags = {w.split("=")[0].strip("[]|…,") for w in rest if w.lstrip("[").startswith("-")}
    unknown = sorted(f for f in flags if f and f not in _options(cmd))
    assert not unknown, f"{where}: '{line}': {cmd.name} has no option {', '.join(unknown)}"
