"""A deterministic document generator: readable English-like prose from a fixed vocabulary and a
seeded RNG. Different indices give different documents; the same index always gives the same text.
Used for the forensics prompts (documents cut to exactly N tokens), tokenizer training and smoke SFT data.
"""

from __future__ import annotations

import random

SUBJECTS = [
    "the committee",
    "a research team",
    "the river authority",
    "our engineers",
    "the city council",
    "a small company",
    "the museum",
    "the observatory",
    "the hospital board",
    "the farmers' union",
    "the orchestra",
    "a group of students",
    "the harbour master",
    "the railway office",
    "the library",
]
VERBS = [
    "reviewed",
    "proposed",
    "measured",
    "rebuilt",
    "questioned",
    "documented",
    "compared",
    "funded",
    "postponed",
    "simulated",
    "inspected",
    "approved",
    "recorded",
    "translated",
    "restored",
]
OBJECTS = [
    "the annual budget",
    "a new bridge design",
    "the flood defences",
    "seventeen old manuscripts",
    "the heating system",
    "a long-term climate study",
    "the supply contracts",
    "the northern archive",
    "an unusual set of measurements",
    "the evening timetable",
    "the water quality reports",
    "a prototype engine",
    "the visitor survey",
    "the storage cellars",
    "three competing proposals",
]
CLAUSES = [
    "because the earlier figures did not agree",
    "after a winter of heavy rain",
    "while the main hall was closed for repairs",
    "although several members objected",
    "so that the results could be checked independently",
    "before the end of the financial year",
    "despite the shortage of trained staff",
    "once the new instruments had been calibrated",
    "as the public hearing had requested",
    "when the second survey came back incomplete",
]
FOLLOW = [
    "The report lists {n} separate findings.",
    "A second review is planned for {month}.",
    "Costs rose by {n} percent over the period.",
    "Only {n} of the proposals were accepted.",
    "The work is expected to take {n} months.",
    "Observers counted {n} distinct problems.",
]
MONTHS = ["January", "March", "May", "July", "September", "November"]


def generate_document(index: int, n_words: int = 1500) -> str:
    rng = random.Random(1_000_003 * (index + 1))
    out: list[str] = []
    count = 0
    while count < n_words:
        s = (  # one f-string in two parts: the four draws stay in this order (the documents are pinned)
            f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} "
            f"{rng.choice(OBJECTS)} {rng.choice(CLAUSES)}."
        )
        if rng.random() < 0.5:
            s += " " + rng.choice(FOLLOW).format(n=rng.randint(2, 99), month=rng.choice(MONTHS))
        out.append(s)
        count += len(s.split())
        if rng.random() < 0.15:
            out.append("\n\n")
    return " ".join(out).replace(" \n\n ", "\n\n")
