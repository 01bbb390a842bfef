"""The two helpers every typed input of the pack shares: a strict pydantic base and "did you mean".

Every manifest, expectation, catalogue, run record and experiment `Params` model derives from
`Strict` (unknown keys refused, values frozen), and every "unknown name" message is built by
`did_you_mean`, so a typo gets the same kind of answer wherever it is made.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from pydantic import Strict as _StrictType


class Strict(BaseModel):
    """Unknown keys are errors (with a suggestion, via schema_errors); instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# A number a rule depends on: ints and floats only (never the string "0.05", never a bool), and
# finite (NaN, inf or an overflowing literal like 1e400 would switch a check off).
Number = Annotated[float, Field(allow_inf_nan=False), _StrictType()]
# A count or size in a Params model: an int (no bool, no text), at least 1.
PositiveInt = Annotated[StrictInt, Field(ge=1)]


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(str(name), [str(c) for c in choices], n=n)


def did_you_mean(name: str, choices: Iterable[str], n: int = 3, listing: bool = True) -> str:
    """ "did you mean 'a' or 'b'?" — or, with no close match, "known: a, b, c" (listing=True) or ""."""
    choices = [str(c) for c in choices]
    close = close_matches(name, choices, n=n)
    if close:
        return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    if listing and choices:
        return "known: " + ", ".join(sorted(choices))
    return ""
