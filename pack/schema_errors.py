"""Turn pydantic validation errors into one sentence each: file, line, field, fix."""

from __future__ import annotations

import difflib
from pathlib import Path

from .yamlio import line_for


def field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(exc, file: Path, lines: dict, base: tuple = (), models_by_loc=None) -> list[str]:
    """One readable sentence per pydantic error (all of them, not only the first)."""
    problems = []
    for err in exc.errors(include_url=False):
        # pydantic inserts union-member tags ('function-after[...]', 'exact', ...) into loc; drop them.
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or not _is_tag(p))
        full = base + loc
        where = f"{file}:{line_for(lines, full) or '?'}"
        field = field_path(full)
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_fields(err, models_by_loc, loc)
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else (f"allowed: {', '.join(sorted(allowed))}" if allowed else "remove it")
            problems.append(f"{where}: unknown key '{field}'; {fix}")
        elif kind == "missing":
            problems.append(f"{where}: '{field}' is required but missing; add it")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: '{field}': {msg}")
    return problems


def _is_tag(part: str) -> bool:
    return any(t in part for t in ("[", "function-", "tagged-union")) or part in {"str", "list[str]", "int", "float"}


def _allowed_fields(err, models_by_loc, loc) -> list[str]:
    if models_by_loc is None:
        return []
    return models_by_loc(loc[:-1])
