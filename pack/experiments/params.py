"""Parse a row's params with its experiment's `Params` model: one sentence per problem, never a traceback.

`pack validate` checks every row's params before anything runs; this is the same check for a
direct caller of `run_rep` (a test, a script), raised as a ManifestError naming each field.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ManifestError
from ..schema_errors import sentences

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], params: dict, what: str) -> M:
    try:
        return model.model_validate(params)
    except ValidationError as e:
        raise ManifestError([f"{what}: {p}" for p in sentences(e, model, "params")]) from None
