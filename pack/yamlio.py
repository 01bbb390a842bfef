"""YAML in and out, with line numbers kept so every error can name file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ManifestError

Path_t = tuple  # a path into the document: ("rows", 3, "metrics", "ppl")


def load_with_lines(path: Path) -> tuple[Any, dict[Path_t, int]]:
    """Parse a YAML file; return the data and a map from key paths to 1-based line numbers."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ManifestError(f"{where}: malformed YAML ({problem}); fix the syntax at that line") from None
    lines: dict[Path_t, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _walk(node, prefix: Path_t, lines: dict[Path_t, int]) -> None:
    import yaml

    lines.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[prefix + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, prefix + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (i,)] = item.start_mark.line + 1
            _walk(item, prefix + (i,), lines)


def line_for(lines: dict[Path_t, int], path: Path_t) -> int | None:
    """The line of the deepest known prefix of `path`."""
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def dump(data: Any) -> str:
    import yaml

    class NoAliases(yaml.SafeDumper):  # anchors (&id001) make hand-edited files hard to read
        def ignore_aliases(self, data):
            return True

    return yaml.dump(data, Dumper=NoAliases, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
