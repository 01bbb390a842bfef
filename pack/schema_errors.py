"""Turn pydantic validation errors into one sentence each: file, line, field, fix."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import BaseModel

from .strict import did_you_mean
from .yamlio import line_for


def field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(
    exc,
    file: Path | None,
    lines: dict,
    base: tuple = (),
    models_by_loc=None,
    line_of: Callable[[tuple], int | None] | None = None,
) -> list[str]:
    """One readable sentence per pydantic error (all of them, not only the first).

    `line_of(loc)` finds the line when the data was merged from several places (a row's params);
    by default it is the line of `base + loc` in `lines`. With no `file` the sentences start at the field.
    """
    problems = []
    for err in exc.errors(include_url=False):
        # pydantic inserts union-member tags ('function-after[...]', 'exact', ...) into loc; drop them.
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or not _is_tag(p))
        full = base + loc
        line = line_of(loc) if line_of else line_for(lines, full)
        where = f"{file}:{line or '?'}: " if file is not None else ""
        field = field_path(full)
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_fields(err, models_by_loc, loc)
            fix = did_you_mean(str(loc[-1]), allowed, n=1) if allowed else "remove it"
            problems.append(f"{where}unknown key '{field}'; {fix}")
        elif kind == "missing":
            problems.append(f"{where}'{field}' is required but missing; add it")
        elif kind in ("float_type", "int_type", "finite_number") or kind.startswith(("int_", "float_")):
            problems.append(f"{where}'{field}': {_number_problem(err)}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where}'{field}': {msg}")
    return problems


def sentences(exc, model: type[BaseModel], prefix: str = "") -> list[str]:
    """The same sentences without file and line, for a caller that validates data outside a file."""
    return describe(
        exc, None, {}, base=(prefix,) if prefix else (), models_by_loc=lambda loc: fields_at(model, loc)
    )


def _number_problem(err) -> str:
    """Why a value is not the number a rule needs, with the fix (YAML reads `1e-3` as text)."""
    value, msg = err.get("input"), err["msg"]
    if isinstance(value, bool):
        return f"{msg}, not {str(value).lower()}; write a number"
    if isinstance(value, str):
        try:
            as_float = float(value)
        except ValueError:
            return f"{msg}, not the text {value!r}; write a number without quotes"
        if as_float == as_float and abs(as_float) != float("inf"):
            whole = err["type"].startswith("int") and as_float.is_integer()
            like = str(int(as_float)) if whole else repr(as_float)
            return (
                f"{msg}, not the text {value!r} (YAML reads a quoted number, or one like 1e-3 without a "
                f"dot, as text); write it like {like}"
            )
        return f"{msg}, not {value!r}; NaN and infinity would switch the check off, so write a finite number"
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        return (
            f"{msg}, not {value}; NaN and infinity (or a literal too large for a float, like 1.0e+400) "
            f"would switch the check off, so write a finite number"
        )
    if isinstance(value, int) and err["type"] == "float_type":
        return f"{msg}; {value} is too large for a float, so write a smaller number"
    if isinstance(value, float) and err["type"] == "int_type":
        return f"{msg}, not {value!r}; write a whole number"
    return msg


def _is_tag(part: str) -> bool:
    return any(t in part for t in ("[", "function-", "tagged-union")) or part in {
        "str",
        "list[str]",
        "int",
        "float",
        "bool",
        "dict[str,any]",
        "list[any]",
        "none",
    }


def _allowed_fields(err, models_by_loc, loc) -> list[str]:
    if models_by_loc is None:
        return []
    return models_by_loc(loc[:-1])


def fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the model(s) found at `loc` inside `model` (through dicts, lists, unions).

    Used for "did you mean": the keys allowed where an unknown key was written.
    """
    types_here: list = [model]
    for part in loc:
        nxt: list = []
        for t in types_here:
            for u in _expand(t):
                if isinstance(u, type) and issubclass(u, BaseModel):
                    if isinstance(part, str) and part in u.model_fields:
                        nxt.append(u.model_fields[part].annotation)
                    continue
                origin = typing.get_origin(u)
                args = typing.get_args(u)
                if origin in (dict, Mapping) and len(args) == 2 and isinstance(part, str):
                    nxt.append(args[1])
                elif origin in (list, tuple, set) and args and isinstance(part, int):
                    nxt.append(args[0])
        # A part that matches nothing is a union tag or a key we cannot follow: stay where we are.
        types_here = nxt or types_here
    names: list[str] = []
    for t in types_here:
        for u in _expand(t):
            if isinstance(u, type) and issubclass(u, BaseModel):
                names += [n for n in u.model_fields if n not in names]
    return names


def _expand(t) -> list:
    """Union members and Annotated payloads, flattened."""
    origin = typing.get_origin(t)
    if origin is typing.Annotated:
        return _expand(typing.get_args(t)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for a in typing.get_args(t) for m in _expand(a)]
    return [t]
