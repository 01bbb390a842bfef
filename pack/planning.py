"""`pack plan`: what running a paper on a hardware class costs, and which rows it cannot take.

Fit rules: the hardware must have at least the GPU count of the row's target and, per GPU, at
least its VRAM; a CPU row fits anywhere. Cost = estimate × hourly price (catalogue, dated).
"""

from __future__ import annotations

from . import catalog
from .manifest import get_manifest


def fits(need: catalog.Hardware, have: catalog.Hardware) -> str | None:
    """None if `have` can run what `need` describes, else why not."""
    if need.gpu_count == 0:
        return None
    if have.gpu_count < need.gpu_count:
        return f"needs {need.gpu_count} GPU(s), has {have.gpu_count}"
    if have.vram_gb and need.vram_gb and have.vram_gb < need.vram_gb * 0.9:
        return f"needs {need.vram_gb:g} GB per GPU, has {have.vram_gb:g} GB"
    return None


def plan(paper: str, hw: str, scale: str = "full") -> dict:
    m = get_manifest(paper)
    have = catalog.get_hardware("local-gpu" if hw == "local" else hw)
    rows_ok, refused = [], []
    for r in m.rows:
        rr = r.at(scale)
        need = catalog.get_hardware(rr.target.hardware)
        why = fits(need, have)
        item = {"row": r.id, "target": rr.target.hardware, "image": rr.target.image, "reps": rr.reps,
                "runtime_estimate_s": rr.runtime_estimate_s, "max_runtime_s": rr.max_runtime_s}
        if why:
            refused.append(item | {"why": why})
            continue
        hours = rr.runtime_estimate_s / 3600
        item["cost_usd"] = round(hours * have.price_usd_per_hour, 4)
        item["max_cost_usd"] = round(rr.max_runtime_s / 3600 * have.price_usd_per_hour, 4)
        rows_ok.append(item)
    total_s = sum(i["runtime_estimate_s"] for i in rows_ok)
    return {
        "paper": paper, "hardware": hw, "scale": scale,
        "price_usd_per_hour": have.price_usd_per_hour, "price_date": have.price_date,
        "rows_ok": rows_ok, "refused": refused,
        "total_runtime_s": total_s,
        "total_cost_usd": round(sum(i["cost_usd"] for i in rows_ok), 4),
        "max_cost_usd": round(sum(i["max_cost_usd"] for i in rows_ok), 4),
    }


def render(p: dict) -> str:
    lines = [f"plan: {p['paper']} on {p['hardware']} at scale {p['scale']} "
             f"({p['price_usd_per_hour']:g} USD/h, price of {p['price_date'] or 'unknown date'})", ""]
    lines.append(f"{'ROW':<32} {'TARGET':<22} {'EST':>8} {'COST USD':>9} {'WORST USD':>9}")
    for i in p["rows_ok"]:
        lines.append(f"{i['row']:<32} {i['target']:<22} {_dur(i['runtime_estimate_s']):>8} {i['cost_usd']:>9.2f} {i['max_cost_usd']:>9.2f}")
    for i in p["refused"]:
        lines.append(f"{i['row']:<32} {i['target']:<22} {'refused':>8}  {i['why']}")
    lines.append("")
    lines.append(f"total: {_dur(p['total_runtime_s'])}, about {p['total_cost_usd']:.2f} USD "
                 f"(at most {p['max_cost_usd']:.2f} USD if every row hits its max runtime)")
    return "\n".join(lines)


def _dur(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
