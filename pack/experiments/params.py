"""Parse a row's params with its experiment's `Params` model: one sentence per problem, never a traceback.

`pack validate` checks every row's params before anything runs; this is the same check for a
direct caller of `run_rep` (a test, a script), raised as a ManifestError naming each field.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ManifestError

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], params: dict, what: str) -> M:
    try:
        return model.model_validate(params)
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"] if not _is_tag(p))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                from ..strict import did_you_mean

                msg = f"unknown key; {did_you_mean(field.split('.')[-1], model.model_fields)}"
            problems.append(f"{what} params.{field}: {msg}")
        raise ManifestError(problems) from None


def _is_tag(part) -> bool:
    # pydantic puts union members and validator names into the location; they are not fields.
    return isinstance(part, str) and ("[" in part or part.startswith("function-") or part in {"str", "int", "float"})
