"""Argument templates for command rows: {name} filled from the row's params."""

from __future__ import annotations

import re

TEMPLATE = re.compile(r"\{(\w+)\}")


def render_args(args: list, params: dict, _depth: int = 0) -> list[str]:
    """Fill {name} from params; "{name}" with a list value splices the list (its items rendered too,
    to a depth of 3). Unknown names stay as written."""
    out: list[str] = []
    for a in args:
        a = str(a)
        whole = TEMPLATE.fullmatch(a)
        if whole and isinstance(params.get(whole.group(1)), list) and _depth < 3:
            out += render_args(params[whole.group(1)], params, _depth + 1)
            continue
        out.append(TEMPLATE.sub(lambda m: str(params[m.group(1)]) if m.group(1) in params else m.group(0), a))
    return out
