"""Perplexity determinism judged within a run: agreement needs two perplexities, and one gets a reason."""

from pack.experiments.throughput.harness import ppl_agreement
from pack.results import RepResult


def _reps(*ppls):
    return [RepResult(metrics={"baseline.ppl": p}) for p in ppls]


def test_repetitions_that_round_alike_at_4dp_agree_and_others_do_not():
    agrees, unjudged = ppl_agreement(_reps(6.12344, 6.123449), ["baseline"])
    assert agrees == {"baseline.ppl_agrees_4dp": 1} and unjudged == {}
    agrees, _ = ppl_agreement(_reps(6.12344, 6.12346), ["baseline"])
    assert agrees == {"baseline.ppl_agrees_4dp": 0}


def test_one_perplexity_is_not_applicable_with_a_reason_not_silently_absent():
    agrees, unjudged = ppl_agreement(_reps(6.1, None), ["baseline", "mcr"])
    assert agrees == {}
    assert (
        set(unjudged) == {"baseline.ppl_agrees_4dp"}
        and "ppl_reps >= 2" in unjudged["baseline.ppl_agrees_4dp"]
    )
