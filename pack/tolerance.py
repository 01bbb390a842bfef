"""Typed tolerance rules and expectation scopes (data only; the checking lives in verify.py)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Exact(Strict):
    """Bit-identical: equal numbers, or equal strings (e.g. a sha256 of an artifact)."""

    kind: Literal["exact"]


class Abs(Strict):
    """|measured - expected| <= value."""

    kind: Literal["abs"]
    value: float = Field(ge=0)


class Rel(Strict):
    """|measured - expected| <= value * |expected|  (0.05 = 5 percent)."""

    kind: Literal["rel"]
    value: float = Field(ge=0)


class Decimals(Strict):
    """round(measured, places) == round(expected, places), for every repetition."""

    kind: Literal["decimals"]
    places: int = Field(ge=0, le=15)


class Range(Strict):
    """min <= measured <= max (either bound may be left out); no expected value needed."""

    kind: Literal["range"]
    min: float | None = None
    max: float | None = None
    exclusive: bool = False  # strict inequalities, e.g. "final accuracy > 70%"

    @model_validator(mode="after")
    def _one_bound(self):
        if self.min is None and self.max is None:
            raise ValueError("a range tolerance needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min {self.min} is above max {self.max}")
        return self


class Stat(Strict):
    """A test over repetitions.

    against: "expected" (the expectation's `values` sample) or "metric:<name>" (another metric of
    the same run, e.g. the baseline arm of an A/B).  expect: "no-difference" passes when the test
    cannot reject equality at alpha; "greater"/"less" pass when measured is significantly so.
    """

    kind: Literal["stat"]
    test: Literal["welch", "mannwhitney"] = "welch"
    alpha: float = Field(0.05, gt=0, lt=1)
    expect: Literal["no-difference", "greater", "less"] = "no-difference"
    against: str = "expected"

    @field_validator("against")
    @classmethod
    def _against(cls, v: str) -> str:
        if v != "expected" and not (v.startswith("metric:") and len(v) > 7):
            raise ValueError("'against' must be 'expected' or 'metric:<metric name>'")
        return v


Tolerance = Annotated[Union[Exact, Abs, Rel, Decimals, Range, Stat], Field(discriminator="kind")]

TOLERANCE_KINDS = ("exact", "abs", "rel", "decimals", "range", "stat")


def describe_rule(t) -> str:
    if t is None:
        return "none"
    k = t.kind
    if k == "exact":
        return "exact"
    if k == "abs":
        return f"±{t.value:g}"
    if k == "rel":
        return f"±{t.value * 100:g}%"
    if k == "decimals":
        return f"equal to {t.places} decimals"
    if k == "range":
        lo = "" if t.min is None else f"{t.min:g} {'<' if t.exclusive else '≤'} "
        hi = "" if t.max is None else f" {'<' if t.exclusive else '≤'} {t.max:g}"
        return f"{lo}x{hi}"
    return f"{t.test} {t.expect} vs {t.against} (α={t.alpha:g})"


def _listify(v):
    return [v] if isinstance(v, (str, int, float)) else v


class Scope(Strict):
    """Where an expectation holds. Every field given must match the run; an empty scope holds everywhere.

    gpu matches as a case-insensitive substring of the GPU model the run recorded ("L40S",
    "H100"); "cpu" matches a run with no GPU. params must equal the run's resolved params.
    """

    hardware: list[str] | None = None
    gpu: list[str] | None = None
    image: list[str] | None = None
    scale: list[Literal["smoke", "full"]] | None = None
    params: dict | None = None

    @field_validator("hardware", "gpu", "image", "scale", mode="before")
    @classmethod
    def _as_list(cls, v):
        return _listify(v)

    def mismatch(self, run: dict) -> str | None:
        """None when `run` (hardware, gpu_models, image, scale, params) is in scope, else why not."""
        if self.scale and run.get("scale") not in self.scale:
            return f"expectation holds at scale {'/'.join(self.scale)}; this run was scale {run.get('scale')}"
        if self.hardware and run.get("hardware") not in self.hardware:
            return f"expectation holds on {', '.join(self.hardware)}; this run was on {run.get('hardware')}"
        if self.gpu:
            models = [m.lower() for m in run.get("gpu_models") or []] or ["cpu"]
            if not any(g.lower() in m for g in self.gpu for m in models):
                return f"expectation holds on GPU {', '.join(self.gpu)}; this run had {', '.join(run.get('gpu_models') or ['no GPU'])}"
        if self.image and run.get("image") not in self.image:
            return f"expectation holds in image {', '.join(self.image)}; this run used {run.get('image') or 'no image'}"
        if self.params:
            rp = run.get("params") or {}
            for k, v in self.params.items():
                if rp.get(k) != v:
                    return f"expectation holds for {k}={v!r}; this run had {k}={rp.get(k)!r}"
        return None
