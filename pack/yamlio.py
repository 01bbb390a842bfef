"""The one door for YAML: every YAML file the pack reads is parsed here, safely and strictly.

`load_with_lines(path)` returns the data and a map from key paths to 1-based line numbers, so
every later error can name file and line. What it refuses, each as one sentence naming the file:

- anything that is not a readable, regular, UTF-8 text file (a folder, a binary, bytes that are
  not UTF-8, a file over MAX_BYTES);
- YAML tags that build anything but plain data (the safe loader; no Python objects);
- aliases that expand to more than MAX_NODES nodes (a "billion laughs" document) or refer to a
  node that contains them; plain anchors and aliases (`&engine` / `<<: *engine`) stay allowed;
- nesting deeper than MAX_DEPTH (a deep document would exhaust the parser's recursion);
- a key given twice in one mapping (YAML says it is an error; PyYAML would keep the last);
- with `expect=dict` / `expect=list`: a top level of another kind (an empty file, a JSON list
  where a mapping belongs).

Scalars are read as YAML 1.1 like PyYAML's safe loader (so `1e-4` stays the text a command line
wants) except that dates stay text: no field of the pack is a date object.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from .errors import ManifestError

Path_t = tuple  # a path into the document: ("rows", 3, "metrics", "ppl")

MAX_BYTES = 8 * 1024 * 1024  # the largest YAML file the pack reads
MAX_DEPTH = 64  # the deepest nesting of mappings and lists
MAX_NODES = 200_000  # nodes of the document with every alias expanded

_MERGE = "tag:yaml.org,2002:merge"
_loader_cls = None


def _loader():
    """A SafeLoader that checks depth and aliases while composing, and keeps dates as text."""
    global _loader_cls
    if _loader_cls is not None:
        return _loader_cls
    import yaml
    from yaml.composer import ComposerError

    class Loader(yaml.SafeLoader):
        yaml_implicit_resolvers = {
            ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
            for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }

        def compose_node(self, parent, index):
            self._depth = getattr(self, "_depth", 0) + 1
            try:
                if self._depth > MAX_DEPTH:
                    raise ComposerError(
                        None, None, f"nesting deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    _loader_cls = Loader
    return Loader


def _read_text(path: Path) -> str:
    """The file's text, or one sentence saying why it is not a YAML text file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    except OSError as e:
        raise ManifestError(
            f"{path}: cannot be read ({e.strerror or e}); check the path and its permissions"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise ManifestError(f"{path}: is a folder, not a YAML file; name a .yaml file")
    if not stat.S_ISREG(st.st_mode):
        raise ManifestError(f"{path}: is not a regular file (a device, pipe or socket); name a .yaml file")
    if st.st_size > MAX_BYTES:
        raise ManifestError(
            f"{path}: {st.st_size} bytes is larger than the {MAX_BYTES} a YAML file of the "
            f"pack may have; is it the right file?"
        )
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ManifestError(f"{path}: cannot be read ({e.strerror or e}); check its permissions") from None
    if b"\x00" in raw:
        raise ManifestError(
            f"{path}: is a binary file (it holds NUL bytes), not YAML text; name a .yaml file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ManifestError(
            f"{path}:{line}: is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
            f"{e.start}); save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def load_with_lines(path: Path, expect: type | None = None) -> tuple[Any, dict[Path_t, int]]:
    """Parse a YAML file; return the data and a map from key paths to 1-based line numbers.

    `expect` (dict or list) is the kind the top level must be; None accepts anything, an
    empty file included (data None).
    """
    import yaml

    path = Path(path)
    text = _read_text(path)
    try:
        loader = _loader()(text)
        try:
            node = loader.get_single_node()
            lines: dict[Path_t, int] = {}
            if node is not None:
                _check_size(node, path)
                problems: list[str] = []
                _walk(node, (), lines, path, problems)
                if problems:
                    raise ManifestError(list(dict.fromkeys(problems)))
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise ManifestError(_yaml_error(path, e, text)) from None
    except RecursionError:
        raise ManifestError(f"{path}: nesting too deep to read; flatten the document") from None
    if expect is not None and not isinstance(data, expect):
        want = {dict: "a mapping (key: value lines)", list: "a list"}.get(expect, expect.__name__)
        found = "the file is empty" if data is None else f"this file holds {_kind(data)}"
        raise ManifestError(f"{path}:1: the top level must be {want}, but {found}")
    return data, lines


def _kind(data) -> str:
    if isinstance(data, dict):
        return "a mapping"
    if isinstance(data, list):
        return "a list"
    return f"a single {type(data).__name__} value"


def _yaml_error(path: Path, e, text: str) -> str:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    if mark is None and hasattr(e, "position"):  # ReaderError: a character YAML does not allow
        line = text.count("\n", 0, e.position) + 1
        return (
            f"{path}:{line}: the control character U+{e.character:04X} is not allowed in YAML text; remove it"
        )
    where = f"{path}:{mark.line + 1}" if mark else str(path)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if "expected a single document" in str(e):
        return f"{where}: holds more than one YAML document (---); keep one"
    if problem.startswith("nesting deeper"):
        return f"{where}: {problem}; the pack's YAML files are never that deep, so flatten it"
    return f"{where}: malformed YAML ({problem}); fix the syntax at that line"


def _check_size(root, path: Path) -> None:
    """Refuse alias bombs and alias cycles: count nodes as if every alias were written out."""
    import yaml

    size: dict[int, int] = {}
    on_stack: set[int] = set()

    def count(node) -> int:
        key = id(node)
        if key in size:
            return size[key]
        if key in on_stack:
            raise ManifestError(
                f"{path}:{node.start_mark.line + 1}: an alias refers to a node that "
                f"contains it; YAML data of the pack cannot be recursive"
            )
        on_stack.add(key)
        n = 1
        if isinstance(node, yaml.MappingNode):
            children = [c for pair in node.value for c in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        for child in children:
            n += count(child)
            if n > MAX_NODES:
                raise ManifestError(
                    f"{path}:{node.start_mark.line + 1}: its aliases expand to more than "
                    f"{MAX_NODES} nodes (a 'billion laughs' document); write fewer nested "
                    "aliases"
                )
        on_stack.discard(key)
        size[key] = n
        return n

    count(root)


def _walk(node, prefix: Path_t, lines: dict[Path_t, int], path: Path, problems: list[str]) -> None:
    """Fill `lines`, and note each key given twice in one mapping (merged `<<` keys may be overridden)."""
    import yaml

    lines.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple, int] = {}
        merges = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            ident = (key_node.tag, key) if isinstance(key_node, yaml.ScalarNode) else None
            if ident is not None and ident in seen:
                problems.append(
                    f"{path}:{line}: duplicate key '{key}' (first given at line {seen[ident]}); "
                    f"keep one of them"
                )
            if ident is not None:
                seen.setdefault(ident, line)
            lines[prefix + (key,)] = line
            _walk(value_node, prefix + (key,), lines, path, problems)
        # `<<: *anchor` keys: their lines are the anchor's, unless the mapping gives the key itself.
        for m in merges:
            for src in m.value if isinstance(m, yaml.SequenceNode) else [m]:
                if isinstance(src, yaml.MappingNode):
                    for key_node, value_node in src.value:
                        if (prefix + (key_node.value,)) not in lines:
                            lines[prefix + (key_node.value,)] = key_node.start_mark.line + 1
                            _walk(value_node, prefix + (key_node.value,), lines, path, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (i,)] = item.start_mark.line + 1
            _walk(item, prefix + (i,), lines, path, problems)


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

    return yaml.dump(
        data, Dumper=NoAliases, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
    )
