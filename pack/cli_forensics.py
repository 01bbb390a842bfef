"""`pack analyze forensics` and `pack export --format seed-json|compact` (seed 001).

Inputs are forensics uniform JSON files, run directories, or runs trees (the newest run of every
forensics row in them). Files of the same experiment from several machines are merged; `--as TYPE`
merges everything given into one experiment of TYPE (exp0 + exp6a + exp6b -> cuda_version).
Heavy imports (torch, safetensors, matplotlib) happen inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import PackError
from .experiments.forensics.kinds import EXPERIMENTS

TYPES = tuple(EXPERIMENTS)  # experiment_type values, in the seed's order


def _uniform_files_in_run(run_dir: Path) -> list[Path]:
    out = []
    for f in sorted((run_dir / "summary").glob("*.json")):
        try:
            head = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(head, dict) and "experiment_metadata" in head and "runs" in head:
            out.append(f)
    return out


def collect(inputs) -> list[Path]:
    """Uniform JSON files named by INPUTS (files, run dirs, runs trees, PAPER:ROW or row ids)."""
    from .cli import runs_of_row
    from .rundir import latest

    files: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_file():
            files.append(p)
        elif p.is_dir() or Path(runs_of_row(raw)).is_dir():  # a folder, or PAPER:ROW / a row id's runs
            for rd in latest(p if p.is_dir() else Path(runs_of_row(raw))):
                files += _uniform_files_in_run(rd.path)
        else:
            raise PackError(f"'{raw}' is neither a forensics JSON file, a directory nor a row with runs")
    if not files:
        raise PackError(
            f"no forensics uniform JSON found in {', '.join(map(str, inputs))}; run a forensics row first"
        )
    return files


def load_groups(inputs, as_type: str | None) -> list[tuple[dict, dict]]:
    """[(doc, tensors)], one per experiment type (merged across machines), or one merged as `as_type`."""
    from .experiments.forensics import uniform

    items = [(uniform.read(f), str(f)) for f in collect(inputs)]
    if as_type:
        docs = [x for x, _ in items]
        return [
            uniform.merge(
                docs, variable=EXPERIMENTS.get(as_type), experiment_type=as_type, names=[n for _, n in items]
            )
        ]
    groups: dict[str, list] = {}
    for (doc, tens), name in items:
        groups.setdefault(doc["experiment_metadata"]["experiment_type"], []).append(((doc, tens), name))
    out = []
    for et in sorted(groups, key=lambda t: TYPES.index(t) if t in TYPES else 99):
        members = groups[et]
        if len(members) == 1:
            out.append(members[0][0])
        else:
            out.append(uniform.merge([m for m, _ in members], names=[n for _, n in members]))
    return out


@click.group("analyze")
def analyze():
    """Analyse experiment outputs (forensics)."""


@analyze.command("forensics")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("reports/forensics"),
    show_default=True,
    help="Where analysis.json, analysis.md, summary.json and the plots go.",
)
@click.option(
    "--as", "as_type", type=click.Choice(TYPES), help="Merge every input into one experiment of this type."
)
@click.option("--title", default="Floating-point forensics (seed 001)", show_default=True)
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
def analyze_forensics(inputs, out_dir, as_type, title, no_plots):
    """Reproducibility, cross-hardware baseline, detectability and SNR for forensics INPUTS."""
    from datetime import datetime, timezone

    from . import fsio
    from .experiments.forensics import analysis, report

    reports = [analysis.Experiment(doc, tens).report() for doc, tens in load_groups(inputs, as_type)]
    hw = sorted({h for r in reports for h in r["hardware_names"]})
    header = {
        "hardware": ", ".join(hw) or "none",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "inputs": ", ".join(str(i) for i in inputs),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    fsio.write_json_atomic(out_dir / "analysis.json", report.jsonable({"header": header, "reports": reports}))
    fsio.write_json_atomic(
        out_dir / "summary.json", report.jsonable([analysis.summary_row(r) for r in reports])
    )
    fsio.write_text_atomic(out_dir / "analysis.md", report.markdown(reports, title=title, header=header))
    written = [] if no_plots else report.plots(reports, out_dir)
    click.echo(report.summary_table(reports))
    if all(r["one_hardware_kind"] for r in reports):
        click.echo(
            "\nonly one hardware kind in these files: SNR needs a second GPU kind; see analysis.md "
            "for within-hardware distances"
        )
    for p in [out_dir / "analysis.md", out_dir / "analysis.json", out_dir / "summary.json", *written]:
        click.echo(f"wrote {p}", err=True)


@click.command("export")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["seed-json", "compact"]),
    required=True,
    help="seed-json: the seed's per-step layout with vectors inline; compact: JSON + safetensors sidecar.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Output JSON file (compact also writes the sidecar next to it).",
)
@click.option(
    "--as", "as_type", type=click.Choice(TYPES), help="Merge every input into one experiment of this type."
)
@click.option(
    "--all-reps", is_flag=True, help="seed-json: put the vectors in every repetition, not only the last."
)
def export(inputs, fmt, output, as_type, all_reps):
    """Export forensics INPUTS (merged when several) as the seed's uniform JSON."""
    from . import fsio
    from .experiments.forensics import uniform

    groups = load_groups(inputs, as_type)
    if len(groups) != 1:
        kinds = sorted({g[0]["experiment_metadata"]["experiment_type"] for g in groups})
        raise PackError(
            f"the inputs hold {len(groups)} experiments ({', '.join(kinds)}); export one at a time "
            f"or merge them with --as TYPE"
        )
    doc, tensors = groups[0]
    problems = uniform.validate(doc)
    if problems:
        raise PackError(f"the merged document does not validate against the schema: {problems[0]}")
    if fmt == "seed-json":
        fsio.write_text_atomic(output, json.dumps(uniform.expand(doc, tensors, all_reps=all_reps)))
    else:
        from .experiments.forensics import signals as sigmod

        doc = json.loads(json.dumps(doc))
        doc["experiment_metadata"].setdefault("storage", {})["sidecar"] = output.with_suffix(
            ".safetensors"
        ).name
        sigmod.save(tensors, output.with_suffix(".safetensors"))
        fsio.write_json_atomic(output, doc)
    click.echo(str(output))
    sys.stdout.flush()
