"""No pack module reaches into another's private names (`from .provenance import _git_sha` was the
kind of coupling that breaks silently when the owner renames its helper): what crosses a module
boundary is public. Test modules may look inside; the package itself may not."""

from __future__ import annotations

import ast
from pathlib import Path

PACK = Path(__file__).resolve().parents[2] / "pack"


def private_imports(path: Path, package: Path = PACK) -> list[str]:
    out, where = [], path.relative_to(package.parent)
    modules = {f.stem for f in package.rglob("*.py")}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("pack")):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    out.append(f"{where}:{node.lineno}: imports {alias.name}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in modules  # <a pack module>._name
        ):
            out.append(f"{where}:{node.lineno}: uses {node.value.id}.{node.attr}")
    return out


def test_no_module_uses_another_modules_private_names():
    found = [p for f in sorted(PACK.rglob("*.py")) for p in private_imports(f)]
    assert found == []


def test_the_check_sees_a_private_import(tmp_path):
    pkg = tmp_path / "pack"
    pkg.mkdir()
    (pkg / "bundle.py").write_text("")
    bad = pkg / "probe.py"
    bad.write_text("from .provenance import _secret\nfrom . import bundle\nbundle._context()\nbundle.ok()\n")
    assert private_imports(bad, pkg) == [
        "pack/probe.py:1: imports _secret",
        "pack/probe.py:3: uses bundle._context",
    ]
