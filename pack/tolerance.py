"""The rule language: each tolerance kind is one class that describes and checks itself.

A rule gets the expectation's value, every repetition's value, the aggregate the manifest names
for the metric ("mean", "median", ...) and, for `stat` rules, a reference sample; it returns a
`Check` (passed, measured, why, band for plots). Adding a tolerance kind means writing one class
here and adding it to `Tolerance`. A repetition that is NaN or inf never passes any rule: it is
caught before any aggregate could average it away.

`Scope` (where an expectation holds) and `gpu_matches` (the one GPU-model matching rule, also used
by the throughput floor) live here too.
"""

from __future__ import annotations

import fnmatch
import math
import statistics
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Annotated, ClassVar, Literal, NamedTuple, Union

from pydantic import Field, field_validator, model_validator

from .strict import Number, Strict

AGGREGATES = ("mean", "median", "min", "max", "first", "last")


class Check(NamedTuple):
    """One rule applied to one metric: the outcome, what was compared, and the band it allows."""

    passed: bool
    measured: object  # the aggregate (or the list of repetitions when they differ, for exact/decimals)
    why: str
    band: tuple | None = None  # (low, high) for plots; either side None for a one-sided range


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numbers(values: list) -> list[float]:
    bad = [v for v in values if not _is_number(v)]
    if bad:
        raise TypeError(f"needs numbers, got {bad[0]!r}")
    return [float(v) for v in values]


def non_finite(values: list) -> str | None:
    """'repetition 2 is nan' for the first NaN/inf repetition, else None."""
    for i, v in enumerate(values, 1):
        if _is_number(v) and not math.isfinite(v):
            return f"repetition {i} of {len(values)} is {v}; a non-finite repetition never passes"
    return None


def aggregate_of(values: list[float], aggregate: str) -> float:
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate '{aggregate}'; use one of {', '.join(AGGREGATES)}")
    if aggregate == "first":
        return values[0]
    if aggregate == "last":
        return values[-1]
    fn = {"mean": statistics.fmean, "median": statistics.median, "min": min, "max": max}[aggregate]
    try:
        got = fn(values)
    except OverflowError:
        got = math.inf
    if not math.isfinite(got):  # finite repetitions whose mean/median overflows: never a number to pass
        raise ValueError(f"the {aggregate} of the repetitions overflows a float (values near ±1.8e308)")
    return got


class Rule(Strict):
    """Base of every tolerance kind."""

    needs_value: ClassVar[bool] = True  # the expectation must carry a `value`
    needs_number: ClassVar[bool] = True  # ... and it must be a number, not a string

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, expected, values: list, aggregate: str = "mean", reference: list | None = None) -> Check:
        """Judge every repetition's value. Raises TypeError/ValueError when the rule cannot apply
        (a string measured under a numeric rule, no repetitions): the verifier turns that into ERROR."""
        if not values:
            raise ValueError("no repetition produced a value")
        bad = non_finite(values)
        if bad:
            nums = [float(v) for v in values if _is_number(v)]
            return Check(False, nums[0] if len(nums) == 1 else nums, bad, self._band(expected))
        return self._check(expected, values, aggregate, reference)

    def _check(self, expected, values, aggregate, reference) -> Check:
        raise NotImplementedError

    def _band(self, expected) -> tuple | None:
        return None


class Exact(Rule):
    """Bit-identical: equal numbers, or equal strings (e.g. a sha256 of an artifact), every repetition."""

    kind: Literal["exact"]
    needs_number: ClassVar[bool] = False

    def describe(self) -> str:
        return "exact"

    def _check(self, expected, values, aggregate, reference) -> Check:
        bad = [v for v in values if v != expected or isinstance(v, bool) != isinstance(expected, bool)]
        measured = values[0] if len(set(map(str, values))) == 1 else values
        why = (
            "all repetitions identical to expected"
            if not bad
            else f"{len(bad)}/{len(values)} repetitions differ from {expected!r} (e.g. {bad[0]!r})"
        )
        return Check(not bad, measured, why)


class _Band(Rule):
    """|aggregate - expected| <= allowed(expected)."""

    def allowed(self, expected: float) -> float:
        raise NotImplementedError

    def _band(self, expected):
        if not _is_number(expected):
            return None
        a = self.allowed(float(expected))
        return (float(expected) - a, float(expected) + a)

    def _check(self, expected, values, aggregate, reference) -> Check:
        exp_f = float(_numbers([expected])[0])
        got = aggregate_of(_numbers(values), aggregate)
        allowed = self.allowed(exp_f)
        if not math.isfinite(allowed):  # e.g. rel 1e300 of 1e10: an infinite band would pass anything
            raise ValueError(
                f"the tolerance band around {exp_f:g} overflows to infinity; give a smaller tolerance"
            )
        diff = got - exp_f
        ok = abs(diff) <= allowed * (1 + 1e-12)
        rel = f" ({diff / exp_f * 100:+.3g}%)" if exp_f else ""
        why = f"{aggregate} {got:.6g} differs by {diff:+.4g}{rel}; allowed ±{allowed:.4g}"
        return Check(ok, got, why, (exp_f - allowed, exp_f + allowed))


class Abs(_Band):
    """|measured - expected| <= value."""

    kind: Literal["abs"]
    value: Number = Field(ge=0)

    def describe(self) -> str:
        return f"±{self.value:g}"

    def allowed(self, expected: float) -> float:
        return self.value


class Rel(_Band):
    """|measured - expected| <= value * |expected|  (0.05 = 5 percent)."""

    kind: Literal["rel"]
    value: Number = Field(ge=0)

    def describe(self) -> str:
        return f"±{self.value * 100:g}%"

    def allowed(self, expected: float) -> float:
        return self.value * abs(expected)


def round_decimal(v: float, places: int) -> Decimal:
    """`v` rounded to `places` decimals, half up, on its shortest decimal form (repr): 2.675 -> 2.68,
    where binary round(2.675, 2) gives 2.67 because the double is 2.67499999..."""
    with localcontext() as ctx:  # enough digits for 1e308 at 15 places (the default 28 would raise)
        ctx.prec = 400
        return Decimal(repr(float(v))).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


class Decimals(Rule):
    """Every repetition rounds to the expected value at `places` decimals ("equal to 4 decimal places").

    Rounding is decimal, ROUND_HALF_UP (the schoolbook rule a paper's "to 4 decimals" means), applied
    to each number's shortest decimal form: 6.12345 -> 6.1235, never the binary double's 6.1234.
    """

    kind: Literal["decimals"]
    places: int = Field(ge=0, le=15, strict=True)

    def describe(self) -> str:
        return f"equal to {self.places} decimals (half up)"

    def _band(self, expected):
        if not _is_number(expected):
            return None
        want = float(round_decimal(expected, self.places))
        half = 0.5 * 10 ** (-self.places)
        return (want - half, want + half)

    def _check(self, expected, values, aggregate, reference) -> Check:
        want = round_decimal(_numbers([expected])[0], self.places)
        got = [round_decimal(v, self.places) for v in _numbers(values)]
        bad = [g for g in got if g != want]
        measured = float(got[0]) if len(set(got)) == 1 else [float(g) for g in got]
        why = (
            f"every repetition rounds to {want}"
            if not bad
            else f"rounded to {self.places} decimals: {', '.join(str(g) for g in got)} vs {want}"
        )
        return Check(not bad, measured, why, self._band(expected))


class Range(Rule):
    """min <= measured <= max (either bound may be left out); no expected value needed."""

    kind: Literal["range"]
    needs_value: ClassVar[bool] = False
    min: Number | None = None
    max: Number | None = None
    exclusive: bool = False  # strict inequalities, e.g. "final accuracy > 70%"

    @model_validator(mode="after")
    def _one_bound(self):
        if self.min is None and self.max is None:
            raise ValueError("a range tolerance needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min {self.min} is above max {self.max}")
        return self

    def describe(self) -> str:
        op = "<" if self.exclusive else "≤"
        lo = "" if self.min is None else f"{self.min:g} {op} "
        hi = "" if self.max is None else f" {op} {self.max:g}"
        return f"{lo}x{hi}"

    def _band(self, expected):
        return (self.min, self.max)

    def _check(self, expected, values, aggregate, reference) -> Check:
        got = aggregate_of(_numbers(values), aggregate)
        lo_ok = self.min is None or (got > self.min if self.exclusive else got >= self.min)
        hi_ok = self.max is None or (got < self.max if self.exclusive else got <= self.max)
        ok = lo_ok and hi_ok
        return Check(
            ok,
            got,
            f"{aggregate} {got:.6g} {'inside' if ok else 'outside'} {self.describe()}",
            self._band(None),
        )


class Stat(Rule):
    """A test over repetitions.

    against: "expected" (the expectation's `values` sample) or "metric:<name>" (another metric of
    the same run, e.g. the baseline arm of an A/B).  expect: "no-difference" passes when the test
    cannot reject equality at alpha; "greater"/"less" pass when measured is significantly so.
    """

    kind: Literal["stat"]
    needs_value: ClassVar[bool] = False
    test: Literal["welch", "mannwhitney"] = "welch"
    alpha: Number = Field(0.05, gt=0, lt=1)
    expect: Literal["no-difference", "greater", "less"] = "no-difference"
    against: str = "expected"

    @field_validator("against")
    @classmethod
    def _against(cls, v: str) -> str:
        if v != "expected" and not (v.startswith("metric:") and len(v) > 7):
            raise ValueError("'against' must be 'expected' or 'metric:<metric name>'")
        return v

    @property
    def against_metric(self) -> str | None:
        """The other metric of the run this rule compares with, or None for the expectation's sample."""
        return self.against.removeprefix("metric:") if self.against != "expected" else None

    def describe(self) -> str:
        return f"{self.test} {self.expect} vs {self.against} (α={self.alpha:g})"

    def check(self, expected, values, aggregate="mean", reference=None) -> Check:
        bad = non_finite(list(reference or []))
        if bad:
            return Check(False, None, f"reference sample ({self.against}): {bad}")
        return super().check(expected, values, aggregate, reference)

    def _check(self, expected, values, aggregate, reference) -> Check:
        from scipy import stats  # only when a stat rule is actually checked

        a, b = _numbers(values), _numbers(list(reference or []))
        if len(a) < 2 or len(b) < 2:
            return Check(
                False,
                a,
                f"a {self.test} test needs at least 2 values on each side (have {len(a)} and {len(b)})",
            )
        alt = {"no-difference": "two-sided", "greater": "greater", "less": "less"}[self.expect]
        if a == b or (len(set(a)) == 1 and len(set(b)) == 1 and a[0] == b[0]):
            p = 1.0  # identical samples: no evidence of any difference (scipy would return nan)
        elif self.test == "welch":
            import numpy as np

            with np.errstate(over="ignore"):
                huge = not all(math.isfinite(float(np.var(x))) for x in (a, b))
            if huge:  # t would be 0/inf: "no difference"
                raise ValueError(
                    "the values are too large for a welch test (their variance overflows a float)"
                )
            p = float(stats.ttest_ind(a, b, equal_var=False, alternative=alt).pvalue)
        else:
            p = float(stats.mannwhitneyu(a, b, alternative=alt).pvalue)
        if math.isnan(p):  # zero variance on both sides with different constants: a certain difference
            p = (
                0.0
                if (alt == "two-sided" or (alt == "greater") == (statistics.fmean(a) > statistics.fmean(b)))
                else 1.0
            )
        if self.expect == "no-difference":
            ok = p >= self.alpha
            verdict = "no significant difference" if ok else "significant difference"
            why = f"{self.test} p={p:.3g} {'≥' if ok else '<'} α={self.alpha:g}: {verdict}"
        else:
            ok = p < self.alpha
            why = (
                f"{self.test} p={p:.3g} {'<' if ok else '≥'} α={self.alpha:g}: "
                f"{'significantly' if ok else 'not significantly'} {self.expect}"
            )
        return Check(ok, statistics.fmean(a), why)


Tolerance = Annotated[Union[Exact, Abs, Rel, Decimals, Range, Stat], Field(discriminator="kind")]

TOLERANCE_KINDS = ("exact", "abs", "rel", "decimals", "range", "stat")


def describe_rule(t: Rule | None) -> str:
    return "none" if t is None else t.describe()


# ---------------------------------------------------------------- scopes
VENDOR_PREFIXES = ("nvidia ", "amd ", "intel ")
BRAND_PREFIXES = ("geforce ", "tesla ")  # nvidia-smi's "NVIDIA GeForce RTX 4060" is the paper's "RTX 4060"
SEPARATORS = ("-", " ", "_")


def _norm_gpu(name: str) -> str:
    s = " ".join(str(name).lower().split())
    for prefixes in (VENDOR_PREFIXES, BRAND_PREFIXES):
        for p in prefixes:
            if s.startswith(p):
                s = s[len(p) :]
                break
    return s


# A word after the model that names another GPU, not a form factor or memory size of the same one:
# "RTX 4060" must not match "RTX 4060 Ti" / "RTX 4060 Laptop GPU", nor "H100" the "H100 NVL".
VARIANT_WORDS = {"ti", "super", "laptop", "mobile", "max", "nvl", "xt", "d"}


def _is_variant(rest: str) -> bool:
    for sep in SEPARATORS[1:]:
        rest = rest.replace(sep, SEPARATORS[0])
    return rest.split(SEPARATORS[0], 1)[0] in VARIANT_WORDS


def gpu_matches(patterns, gpu_models) -> bool:
    """Does any pattern name one of the run's GPU models? Exact, never by substring.

    Case-insensitive, a vendor prefix ("NVIDIA ", then "GeForce "/"Tesla ") ignored. A pattern
    matches a model equal to it or one that continues after it with a separator ('-', ' ', '_'):
    "A100" matches "NVIDIA A100-SXM4-80GB", but "A10" does not match "A100" and "L4" does not
    match "L40S"; a variant word after it (VARIANT_WORDS: "RTX 4060 Ti", "H100 NVL") is another GPU.
    A pattern with * ? [ is an fnmatch glob over the whole (normalised) model name. "cpu" matches a
    run with no GPU.
    """
    patterns = [patterns] if isinstance(patterns, str) else list(patterns or [])
    models = [_norm_gpu(m) for m in gpu_models or []]
    for pat in patterns:
        p = _norm_gpu(pat)
        if not models:
            if p == "cpu":
                return True
            continue
        for m in models:
            if any(ch in p for ch in "*?["):
                if fnmatch.fnmatchcase(m, p):
                    return True
            elif m == p or (m.startswith(p) and m[len(p)] in SEPARATORS and not _is_variant(m[len(p) + 1 :])):
                return True
    return False


def _listify(v):
    return [v] if isinstance(v, (str, int, float)) else v


class Scope(Strict):
    """Where an expectation holds. Every field given must match the run; an empty scope holds everywhere.

    gpu matches the GPU model the run recorded exactly, by `gpu_matches` ("L40S" matches
    "NVIDIA L40S", never "L4"); "cpu" matches a run with no GPU. params must equal the run's params.
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

    def gpu_matches(self, gpu_models) -> bool:
        """True when this scope names no GPU or names one of `gpu_models` (see `gpu_matches`)."""
        return not self.gpu or gpu_matches(self.gpu, gpu_models)

    def describe(self) -> str:
        """'GPU RTX 4060, scale full': where the expectation holds, for headlines; '' when everywhere."""
        parts = []
        for label, vals in (
            ("GPU", self.gpu),
            ("hardware", self.hardware),
            ("image", self.image),
            ("scale", self.scale),
        ):
            if vals:
                parts.append(f"{label} {'/'.join(map(str, vals))}")
        if self.params:
            short = {k: (f"{str(v)[:12]}…" if len(str(v)) > 16 else v) for k, v in self.params.items()}
            parts.append(", ".join(f"{k}={v}" for k, v in short.items()))  # a sha256 shortened for headlines
        return ", ".join(parts)

    def mismatch(self, run: dict) -> str | None:
        """None when `run` (hardware, gpu_models, image, scale, params) is in scope, else why not."""
        if self.scale and run.get("scale") not in self.scale:
            return f"expectation holds at scale {'/'.join(self.scale)}; this run was scale {run.get('scale')}"
        if self.hardware and run.get("hardware") not in self.hardware:
            return f"expectation holds on {', '.join(self.hardware)}; this run was on {run.get('hardware')}"
        if self.hardware and run.get("hardware_mismatch"):  # the run's --hw is not what it ran on
            return f"expectation holds on {', '.join(self.hardware)}; {run['hardware_mismatch']}"
        if not self.gpu_matches(run.get("gpu_models") or []):
            had = ", ".join(run.get("gpu_models") or ["no GPU"])
            where = " or ".join("the CPU (no GPU)" if g.lower() == "cpu" else f"GPU {g}" for g in self.gpu)
            return f"expectation holds on {where}; this run had {had}"
        if self.image and run.get("image") not in self.image:
            used = run.get("image") or "no image"
            return f"expectation holds in image {', '.join(self.image)}; this run used {used}"
        if self.params:
            rp = run.get("params") or {}
            for k, v in self.params.items():
                if rp.get(k) != v:
                    return f"expectation holds for {k}={v!r}; this run had {k}={rp.get(k)!r}"
        return None
