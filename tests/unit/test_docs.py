"""Docs tested against the code: every `pack` command and option the README and docs/ show exists,
in code blocks and in `pack …` spans of the prose alike (in the spirit of sqlite-utils' test_docs.py),
so a renamed flag cannot leave the docs behind; every command is documented somewhere; and the README
has the glossary of the papers' names a reader meets (Paper B, MCR, ECMoE, …)."""

from __future__ import annotations

import re

import click
import pytest

from pack.cli import cli
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# `pack …` at the start of a code line (after an optional prompt), up to a comment or the line's end.
COMMAND = re.compile(r"^\s*(?:\$\s+)?(?:\.venv/bin/|\$\(BIN\)/)?pack\s+([^#\n`]*)", re.MULTILINE)
# `pack …` as an inline code span in prose (not inside a fenced block: those are read above).
SPAN = re.compile(r"(?<!`)`(?:\.venv/bin/)?pack\s+([^`\n]+)`(?!`)")


def _code(text: str) -> str:
    """Fenced code blocks only: prose may say 'pack' as a word."""
    return "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL))


def _prose(text: str) -> str:
    return re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.DOTALL)


def documented() -> list[tuple[str, str, list[str]]]:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        where = str(doc.relative_to(REPO))
        for m in COMMAND.finditer(_code(text)):
            words = m.group(1).split()
            if words:
                out.append((where, m.group(0).strip(), words))
        for m in SPAN.finditer(_prose(text)):
            out.append((where, m.group(0), m.group(1).split()))
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
    if cmd is None and words[0].startswith("-"):  # `pack --help`, `pack --version`: the group's own
        cmd, rest = cli, words
    assert cmd is not None and (cmd is not cli or rest[0].startswith("-")), (
        f"{where}: '{line}': no such command '{words[0]}'"
    )
    flags = {w.split("=")[0].strip("[]|…,") for w in rest if w.lstrip("[").startswith("-")}
    unknown = sorted(f for f in flags if f and f not in _options(cmd))
    assert not unknown, f"{where}: '{line}': {cmd.name} has no option {', '.join(unknown)}"


def _commands(group: click.Group, prefix: str = "pack"):
    for name, cmd in group.commands.items():
        yield f"{prefix} {name}", cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix} {name}")


def test_every_command_is_documented():
    said = {" ".join(["pack", *words]) for _, _, words in documented()}
    missing = []
    for name, _ in _commands(cli):
        if name == "pack launch start":  # documented as its shorthand, `pack launch ROW …`
            name = "pack launch"
        if not any(s == name or s.startswith(name + " ") for s in said):
            missing.append(name)
    assert not missing, f"commands no README or docs/ page shows: {missing}"


def _section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.DOTALL | re.MULTILINE)
    assert m, f"README.md has no '## {title}' section"
    return m.group(1)


def test_the_readme_has_a_glossary_of_the_papers_names():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    glossary = _section(readme, "Glossary")
    terms = {m.group(1).strip() for m in re.finditer(r"^\| ([^|]+?) \|", glossary, flags=re.MULTILINE)}
    names = {n.strip() for t in terms for n in t.split(",")}
    for name in ("Paper B", "MCR", "AXEX", "ECMoE", "EP", "TP", "smoke", "full", "bundle"):
        assert name in names, f"README.md's glossary does not explain '{name}'"
    from pack.manifest import manifest_files

    papers_table = _section(readme, "Papers and rows")
    for f in manifest_files():  # every paper a command may name is introduced to the reader
        assert f"`{f.stem}`" in papers_table, f"README.md's 'Papers and rows' does not list {f.stem}"
