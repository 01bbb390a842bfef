"""`pack plan`: what running a paper (or some rows) on a hardware class costs, and which rows it cannot take.

Fit rules: the hardware must have at least the GPU count of the row's target and, per GPU, at
least its VRAM; a CPU row fits anywhere. Cost = estimate × hourly price (the pack's dated SkyPilot
catalog, manifests/sky-catalog).

`pack launch` adds two things on top (see `launch_plan`): the provider's fixed overhead (boot,
image pull) and the deadline every launched resource carries, and a budget gate: the worst case
(every row hits its max runtime, the instance lives to its deadline) must fit BUDGET_USD / --budget,
or nothing launches.
"""

from __future__ import annotations

import math
import os

from . import catalog
from .errors import PackError
from .manifest import find_row, get_manifest, usable_manifests


class BudgetExceeded(PackError):
    """The worst-case cost of a launch is above the budget; nothing was started."""


class RowRefused(PackError):
    """The hardware cannot run a row that was asked for by name (too few GPUs, too little VRAM)."""


def fits(need: catalog.Hardware, have: catalog.Hardware) -> str | None:
    """None if `have` can run what `need` describes, else why not."""
    if need.gpu_count == 0:
        return None
    if have.gpu_count < need.gpu_count:
        return f"needs {need.gpu_count} GPU(s), has {have.gpu_count}"
    if have.vram_gb and need.vram_gb and have.vram_gb < need.vram_gb * 0.9:
        return f"needs {need.vram_gb:g} GB per GPU, has {have.vram_gb:g} GB"
    return None


def resolve_hardware(hw: str) -> tuple[str, catalog.Hardware]:
    """(catalogue name, Hardware) for a --hw value; 'local' is this machine (cpu or local-gpu)."""
    if hw == "local":
        from .run import local_hardware_name

        hw = local_hardware_name()
    return hw, catalog.get_hardware(hw)


def expand_refs(refs: list[str] | tuple[str, ...]) -> list[tuple]:
    """(manifest, row, asked_by_name) for paper names and row ids, in the order given, no duplicates."""
    papers = {m.paper: m for m in usable_manifests()}
    out, seen = [], set()
    for ref in refs:
        if ref in papers:
            pairs = [(papers[ref], r, False) for r in papers[ref].rows]
        else:
            pairs = [(*find_row(ref), True)]
        for m, r, named in pairs:
            if (m.paper, r.id) not in seen:
                seen.add((m.paper, r.id))
                out.append((m, r, named))
    return out


def plan_rows(refs, hw: str, scale: str = "full") -> dict:
    """The plan for any mix of paper names and row ids on hardware `hw` (see `plan`)."""
    hw_name, have = resolve_hardware(hw)
    price = catalog.price(hw_name)
    rows_ok, refused = [], []
    for m, r, named in expand_refs(list(refs)):
        rr = r.at(scale)
        need = catalog.get_hardware(rr.target.hardware)
        why = fits(need, have)
        item = {
            "paper": m.paper,
            "row": r.id,
            "target": rr.target.hardware,
            "image": rr.target.image,
            "reps": rr.reps,
            "runtime_estimate_s": rr.runtime_estimate_s,
            "max_runtime_s": rr.max_runtime_s,
            "named": named,
            "seed_cost": seed_cost(r.tags),
        }
        if why:
            refused.append(item | {"why": why})
            continue
        hours = rr.runtime_estimate_s / 3600
        item["cost_usd"] = round(hours * price.usd_per_hour, 4)
        item["max_cost_usd"] = round(rr.max_runtime_s / 3600 * price.usd_per_hour, 4)
        rows_ok.append(item)
    total_s = sum(i["runtime_estimate_s"] for i in rows_ok)
    return {
        "paper": ",".join(refs),
        "hardware": hw_name,
        "scale": scale,
        "price_usd_per_hour": price.usd_per_hour,
        "price_date": price.date,
        "price_source": price.source,
        "accelerator": price.accelerator,
        "rows_ok": rows_ok,
        "refused": refused,
        "total_runtime_s": total_s,
        "total_cost_usd": round(sum(i["cost_usd"] for i in rows_ok), 4),
        "max_cost_usd": round(sum(i["max_cost_usd"] for i in rows_ok), 4),
    }


def seed_cost(tags: list[str]) -> str | None:
    """The cost the paper's own guide quotes for a row (tag `seed-cost: ...`), shown beside the pack's
    estimate."""
    return next((t.split(":", 1)[1].strip() for t in tags if t.startswith("seed-cost:")), None)


def plan(paper: str, hw: str, scale: str = "full") -> dict:
    get_manifest(paper)  # an unknown paper answers with close matches
    p = plan_rows([paper], hw, scale)
    p["paper"] = paper
    return p


def launch_plan(refs, hw: str, scale: str, *, overhead_s: float, grace_s: float, group=None) -> dict:
    """`plan_rows` plus the launches' deadlines and worst-case cost.

    The fitting rows are split into launches by `group(row_item)` (default: one launch for all; the
    cloud launcher passes one per row, one cluster each). Per launch, deadline = its rows' max
    runtimes + overhead_s (boot, image pull, fetch); the resource is gone by deadline + grace_s
    whatever happens (SkyPilot's autodown after its idle limit), so worst_case_usd = the sum over
    launches of (deadline + grace_s) / 3600 × price is the most they can cost.
    A row asked for by name that the hardware cannot take is refused here (RowRefused).
    """
    p = plan_rows(refs, hw, scale)
    named = [i for i in p["refused"] if i["named"]]
    if named:
        i = named[0]
        raise RowRefused(
            f"row '{i['row']}' at scale {scale} targets {i['target']} and {p['hardware']} "
            "cannot run it "
            f"({i['why']}); pick a hardware class that can (see manifests/hardware.yaml) "
            f"or --scale smoke"
        )
    if not p["rows_ok"]:
        whys = "; ".join(f"{i['row']}: {i['why']}" for i in p["refused"][:3])
        raise RowRefused(
            f"{p['hardware']} can run none of the rows of {p['paper']} at scale {scale} ({whys})"
        )
    groups: dict = {}
    for i in p["rows_ok"]:
        groups.setdefault(group(i) if group else None, []).append(i)
    price = p["price_usd_per_hour"]
    deadlines = [math.ceil(sum(i["max_runtime_s"] for i in g) + overhead_s) for g in groups.values()]
    p["groups"] = [[f"{i['paper']}:{i['row']}" for i in g] for g in groups.values()]
    p["group_keys"] = list(groups)
    p["launches"] = len(groups)
    p["overhead_s"] = overhead_s
    p["grace_s"] = grace_s
    p["deadline_s"] = max(deadlines)
    p["deadlines_s"] = deadlines
    p["estimate_usd"] = round((p["total_runtime_s"] + overhead_s * len(groups)) / 3600 * price, 4)
    p["worst_case_usd"] = round(sum(d + grace_s for d in deadlines) / 3600 * price, 4)
    return p


def budget_from_env(cli_value: float | None) -> float | None:
    """--budget wins over BUDGET_USD; None means no gate. A malformed BUDGET_USD is a usage error."""
    if cli_value is not None:
        return cli_value
    raw = os.environ.get("BUDGET_USD", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise PackError(f"BUDGET_USD='{raw}' is not a number of US dollars; set e.g. BUDGET_USD=5") from None
    if value < 0:
        raise PackError(f"BUDGET_USD={raw} is negative; set a budget of 0 or more US dollars")
    return value


def check_budget(p: dict, budget: float | None) -> None:
    """Refuse a launch whose worst case exceeds the budget (before anything is created)."""
    if budget is None:
        return
    if p["worst_case_usd"] > budget:
        raise BudgetExceeded(
            f"refusing to launch: the worst case for {p['paper']} on {p['hardware']} is "
            f"{p['worst_case_usd']:.2f} USD "
            f"({_bound(p)} at {p['price_usd_per_hour']:g} USD/h), above the budget of "
            f"{budget:.2f} USD; raise BUDGET_USD/--budget or launch fewer rows"
        )


def _price_basis(p: dict) -> str:
    """Where the hourly price comes from and when it was recorded (manifests/sky-catalog/SOURCES.yaml)."""
    if not p["price_date"]:
        return p.get("price_source") or "source not recorded"
    return f"{p['price_source']}, price of {p['price_date']} (manifests/sky-catalog)"


def _bound(p: dict) -> str:
    if p.get("launches", 1) > 1:
        return f"{p['launches']} launches, each to its deadline + {_dur(p['grace_s'])} idle"
    return f"deadline {_dur(p['deadline_s'] + p['grace_s'])}"


def render(p: dict, fancy: bool = False) -> str:
    """The plan as text; fancy=True draws the rows as a table fitting the terminal (pack/console.py),
    for `pack plan` on a terminal (the launch log keeps the plain form)."""
    lines = [
        f"plan: {p['paper']} on {p['hardware']} at scale {p['scale']} "
        f"({p['price_usd_per_hour']:g} USD/h: {_price_basis(p)})",
        "",
    ]
    if fancy:
        from .console import prose, table

        cells = [
            [
                i["row"],
                i["target"],
                _dur(i["runtime_estimate_s"]),
                f"{i['cost_usd']:.2f}",
                f"{i['max_cost_usd']:.2f}",
                i.get("seed_cost") or "",
            ]
            for i in p["rows_ok"]
        ]
        cells += [[i["row"], i["target"], "refused", "", "", i["why"]] for i in p["refused"]]
        drawn = table(["ROW", "TARGET", "EST", "COST USD", "WORST USD", "NOTE"], cells, fancy=True)
        return "\n".join([prose(lines, fancy=True), drawn, "", prose(_totals(p), fancy=True)])
    lines.append(f"{'ROW':<32} {'TARGET':<22} {'EST':>8} {'COST USD':>9} {'WORST USD':>9}")
    for i in p["rows_ok"]:
        seed = (
            f"  ({i['seed_cost']}; {i['cost_usd']:.2f} here at {p['price_usd_per_hour']:g} USD/h, "
            f"{_price_basis(p)})"
            if i.get("seed_cost")
            else ""
        )
        lines.append(
            f"{i['row']:<32} {i['target']:<22} {_dur(i['runtime_estimate_s']):>8} "
            f"{i['cost_usd']:>9.2f} {i['max_cost_usd']:>9.2f}{seed}"
        )
    for i in p["refused"]:
        lines.append(f"{i['row']:<32} {i['target']:<22} {'refused':>8}  {i['why']}")
    lines.append("")
    return "\n".join(lines + _totals(p))


def _totals(p: dict) -> list[str]:
    lines = []
    lines.append(
        f"total: {_dur(p['total_runtime_s'])}, about {p['total_cost_usd']:.2f} USD "
        f"(at most {p['max_cost_usd']:.2f} USD if every row hits its max runtime)"
    )
    if p.get("launches", 1) > 1:
        lines.append(
            f"launch: {p['launches']} launches, each +{_dur(p['overhead_s'])} boot/pull/fetch "
            f"and at most +{_dur(p['grace_s'])} idle before autodown; "
            f"about {p['estimate_usd']:.2f} USD, at most {p['worst_case_usd']:.2f} USD"
        )
    elif "deadline_s" in p:
        lines.append(
            f"launch: +{_dur(p['overhead_s'])} boot/pull/fetch; about {p['estimate_usd']:.2f} USD; "
            f"deadline {_dur(p['deadline_s'])} (+{_dur(p['grace_s'])} grace), so at most "
            f"{p['worst_case_usd']:.2f} USD"
        )
    return lines


def _dur(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
