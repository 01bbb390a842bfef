"""`pack launch ROW|PAPER --hw HW` and `pack launch plan|status|down|reap|ledger|images`.

Only click is imported at module level: `pack --help` must stay light. Everything else (SkyPilot,
the planner) is imported inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


class _LaunchGroup(click.Group):
    """`pack launch exp6a --hw …` starts a launch; `pack launch status …` etc. are the verbs."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["start", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write_usage("pack launch", "ROW|PAPER... --hw HW [OPTIONS]  |  pack launch VERB ...")


def _err(msg: str) -> None:
    click.echo(msg, err=True)


def _runs_root(out: Path | None) -> Path:
    from .. import paths

    return out.resolve() if out else paths.runs_dir()


def _hardware(hw: str):
    """(name, Hardware); an unknown name lists the whole catalogue."""
    from .. import catalog, paths
    from ..errors import ManifestError
    from ..planning import resolve_hardware

    try:
        return resolve_hardware(hw)
    except ManifestError:
        table = catalog.hardware()
        from ..strict import did_you_mean

        close = did_you_mean(hw, table, n=2, listing=False)
        hint = f" ({close})" if close else ""
        lines = "\n".join(f"  {n:<26} {h.provider:<7} {h.description}" for n, h in table.items())
        raise ManifestError(
            f"unknown hardware '{hw}'{hint}; --hw takes 'local' or a name from "
            f"{paths.manifests_dir() / 'hardware.yaml'}:\n{lines}"
        ) from None


def provider_for(hardware, image: str | None) -> str:
    """local (a child `pack run`), docker (a local container), or sky (a SkyPilot cluster per row)."""
    if hardware.provider == "local":
        return "docker" if image else "local"
    return "sky"


def make_launcher(provider: str, runs_root: Path):
    if provider == "local":
        from .local import LocalLauncher

        return LocalLauncher(runs_root)
    from .docker import DockerLauncher

    return DockerLauncher(runs_root)


@click.group("launch", cls=_LaunchGroup)
def launch_group():
    """Run rows on the hardware they need: here, in a local container, or on SkyPilot clusters.

    \b
      pack launch paperB --hw g6e.xlarge --parallel 3   one SkyPilot cluster per row, 3 at a time
      pack launch exp6a --hw runpod-h100-sxm            plan, budget gate, launch, wait, fetch, verify, down
      pack launch wire-compression --hw local --image cu128   inside a local pack image
      pack launch plan paperB --hw g6e.xlarge            cost, deadlines, SkyPilot's chosen resources
      pack launch status [ID] | down ID | reap | ledger

    Cloud launches need the cloud extra (SkyPilot). Every cluster autodowns after an idle limit
    (the pack's SkyPilot admin policy refuses one that would not), has a wall-clock cap from its
    row's max runtime, and is torn down when the client is done with it. BUDGET_USD (or --budget)
    refuses a launch whose worst case costs more, before anything is created.
    """


def _options(f):
    f = click.option(
        "--hw", "hw", required=True, help="'local' or a hardware class from manifests/hardware.yaml."
    )(f)
    f = click.option("--scale", type=click.Choice(["smoke", "full"]), default="full", show_default=True)(f)
    f = click.option(
        "--budget", type=float, help="Refuse if the worst case costs more (USD; default $BUDGET_USD)."
    )(f)
    return f


def _plan(refs, hw: str, scale: str, image: str | None):
    """(hardware, provider, launch plan): one launch per row on a cloud, one per image here."""
    from .. import planning
    from . import images, settings

    name, have = _hardware(hw)
    provider = provider_for(have, image)
    if provider == "sky" or image:
        images.choose_variant([], image)  # an unknown --image fails before planning
    cfg = settings.provider(provider)

    def group(item):
        if provider == "sky":
            return f"{item['paper']}:{item['row']}"
        return (
            None
            if provider == "local"
            else images.choose_variant([item["image"]] if item["image"] else [], image)
        )

    p = planning.launch_plan(
        list(refs),
        hw,
        scale,
        overhead_s=cfg.get("overhead_s", 0),
        grace_s=int(cfg.get("grace_s", 300)),
        group=group,
    )
    return have, provider, p


def sky_choice(p: dict, specs) -> list[str]:
    """SkyPilot's optimizer on the pack's catalog: a line per distinct resources, checked against the plan."""
    import importlib.util

    from ..errors import LaunchError
    from . import cloud, offline

    try:  # the optimizer runs in a child process: SkyPilot is not imported here
        have = importlib.util.find_spec("sky") is not None
    except ImportError:
        have = False
    if not have:
        return [f"SkyPilot's choice not shown: SkyPilot is not installed: {cloud.EXTRA}"]
    # one optimizer question per distinct resources request (rows on the same hardware share it)
    kws = {repr(sorted(k.items())): k for k in (cloud.resources_kwargs(s) for s in specs)}
    lines = []
    for kw, got in zip(kws.values(), offline.choose(list(kws.values())), strict=True):
        if "error" in got:
            raise LaunchError(f"SkyPilot refuses {kw['instance_type']} on {kw['infra']}: {got['error']}")
        acc = ",".join(f"{a}:{n:g}" for a, n in (got["accelerators"] or {}).items())
        lines.append(
            f"SkyPilot chose: {got['cloud']} ({got['region']}) {got['instance_type']} {acc} "
            f"image {kw['image_id']} at {got['usd_per_hour']:g} USD/h"
        )
        if abs(got["usd_per_hour"] - p["price_usd_per_hour"]) > 1e-6:
            raise LaunchError(
                f"SkyPilot prices {got['instance_type']} at {got['usd_per_hour']} USD/h but the plan at "
                f"{p['price_usd_per_hour']}; both read manifests/sky-catalog, so this is a bug"
            )
    return lines


@launch_group.command("plan")
@click.argument("refs", nargs=-1, required=True)
@_options
@click.option(
    "--image", help="Run inside this image variant (manifests/images.yaml); default: the rows' own."
)
@click.option("--json", "as_json", is_flag=True)
def plan_cmd(refs, hw, scale, budget, image, as_json):
    """Per-row time and cost of launching REFS on HW, the deadlines, SkyPilot's choice, the budget gate."""
    from .. import planning

    have, provider, p = _plan(refs, hw, scale, image)
    b = planning.budget_from_env(budget)
    if as_json:
        from ..fsio import json_text

        click.echo(json_text(p | {"budget_usd": b}))
    else:
        click.echo(planning.render(p))
        if provider == "sky":
            for line in sky_choice(p, cloud_specs(p, have, scale, image, remote=False)):
                click.echo(line)
        if b is not None:
            click.echo(f"budget: {b:.2f} USD")
    planning.check_budget(p, b)


def cloud_specs(p: dict, have, scale: str, image: str | None, remote: bool = True):
    """One cloud.RowLaunch per fitting row (each its own cluster, image and cap). remote=False (the
    plan) accepts a local image name: the optimizer's choice does not depend on the registry."""
    from .. import catalog
    from . import images, settings
    from .cloud import RowLaunch
    from .spec import new_launch_id

    cfg = settings.provider("sky")
    price = catalog.price(p["hardware"])
    specs, ids = [], set()
    for i in p["rows_ok"]:
        variant = images.choose_variant([i["image"]] if i["image"] else [], image)
        ref, digest = images.image_ref(variant, remote)
        lid = new_launch_id()
        while lid in ids:
            lid = new_launch_id()
        ids.add(lid)
        specs.append(
            RowLaunch(
                launch_id=lid,
                row=f"{i['paper']}:{i['row']}",
                scale=scale,
                hardware_name=p["hardware"],
                hardware=have,
                price=price,
                image_ref=ref,
                image_digest=digest,
                max_runtime_s=int(i["max_runtime_s"]),
                overhead_s=int(cfg.get("overhead_s", 900)),
                idle_minutes=int(cfg.get("idle_minutes", 10)),
            )
        )
    return specs


def build_specs(
    refs, hw: str, scale: str, *, budget: float | None = None, image: str | None = None, log=_err
):
    """Plan, refuse what cannot run, gate on the budget, and return (specs, provider, plan).

    On a cloud each row is one cluster (cloud.RowLaunch); here, rows that ask for different images
    become one launch each (spec.LaunchSpec). Nothing is created here: every refusal happens first."""
    import math

    from .. import planning
    from . import images
    from .spec import LaunchSpec, new_launch_id

    have, provider, p = _plan(refs, hw, scale, image)
    log(planning.render(p))
    for i in p["refused"]:
        log(f"skip {i['paper']}:{i['row']}: {i['why']} on {p['hardware']}")
    planning.check_budget(p, planning.budget_from_env(budget))
    if provider == "sky":
        return cloud_specs(p, have, scale, image), provider, p
    specs = []
    by_row = {f"{i['paper']}:{i['row']}": i for i in p["rows_ok"]}
    for variant, rows in zip(p["group_keys"], p["groups"], strict=True):
        ref = digest = None
        if variant:
            ref, digest = images.image_ref(variant, remote=False)
        launch_id = new_launch_id()
        while any(s.launch_id == launch_id for s in specs):
            launch_id = new_launch_id()
        specs.append(
            LaunchSpec(
                launch_id=launch_id,
                refs=tuple(refs),
                rows=tuple(rows),
                scale=scale,
                hardware_name=p["hardware"],
                hardware=have,
                image_variant=variant,
                image_ref=ref,
                image_digest=digest,
                deadline_s=math.ceil(sum(by_row[r]["max_runtime_s"] for r in rows) + p["overhead_s"]),
                grace_s=int(p["grace_s"]),
            )
        )
    return specs, provider, p


def build_spec(refs, hw: str, scale: str, **kwargs):
    """`build_specs` for rows that share one image: (spec, provider, plan)."""
    specs, provider, p = build_specs(refs, hw, scale, **kwargs)
    if len(specs) != 1:
        from ..errors import LaunchError

        raise LaunchError(f"these rows need {len(specs)} launches")
    return specs[0], provider, p


@launch_group.command("start", hidden=True)
@click.argument("refs", nargs=-1, required=True)
@_options
@click.option(
    "--image", help="Run inside this image variant (manifests/images.yaml); default: the rows' own."
)
@click.option(
    "--parallel", type=click.IntRange(1, 64), default=1, show_default=True, help="Clusters at once."
)
@click.option(
    "--detach", is_flag=True, help="Local container only: return once it runs; reattach with status."
)
@click.option("--dry-run", is_flag=True, help="Plan and check the budget, launch nothing.")
@click.option("--poll", "poll_s", type=float, default=30.0, show_default=True, help="Seconds between polls.")
@click.option("--out", type=click.Path(path_type=Path), help="Runs directory (default ./runs or $PACK_RUNS).")
def start_cmd(refs, hw, scale, budget, image, parallel, detach, dry_run, poll_s, out):
    """Launch REFS (row ids or paper names) on HW."""
    specs, provider, p = build_specs(refs, hw, scale, budget=budget, image=image)
    if provider == "sky":
        from . import cloud

        for line in sky_choice(p, specs):
            _err(line)
        if dry_run:
            _err(f"dry run: would launch {len(specs)} cluster(s), {parallel} at a time; nothing was created")
            return
        cloud.require_sky()  # one sentence naming the extra
        outcomes = cloud.launch_all(specs, _runs_root(out), _err, parallel=parallel)
        for o in outcomes:
            click.echo(f"{o.spec.launch_id}\t{o.spec.row}\t{o.status}\t{o.cost_usd}")
        if any(o.status != "finished" for o in outcomes):
            sys.exit(1)
        return
    from . import lifecycle

    if dry_run:
        for spec in specs:
            _err(
                f"dry run: would launch {len(spec.rows)} row(s) on {provider} ({spec.hardware_name})"
                + (f" in {spec.image_ref}" if spec.image_ref else "")
                + "; nothing was created"
            )
        return
    failed = 0
    for spec in specs:
        rec = lifecycle.start(spec, make_launcher(provider, _runs_root(out)), wait=not detach, poll_s=poll_s)
        click.echo(f"{rec.launch_id}\t{rec.status}\t{rec.cost_usd if rec.cost_usd is not None else '-'}")
        failed += not detach and rec.status != "finished"
    if failed:
        sys.exit(1)


_out_opt = click.option("--out", type=click.Path(path_type=Path), help="Runs directory holding ledger.jsonl.")


def _sky_state() -> tuple[dict, list[str]]:
    """({cluster name: SkyPilot status}, clouds that could not be checked) for the pack's clusters."""
    from . import cloud

    found, unchecked = cloud.clusters(_err)
    return {r["name"]: str(r.get("status")) for r in found}, unchecked


def _say_unchecked(unchecked: list[str]) -> None:
    for u in unchecked:
        _err(f"could not check {u}: clusters there are unknown, not absent")


@launch_group.command("status")
@click.argument("launch_id", required=False)
@_out_opt
def status_cmd(launch_id, out):
    """State of LAUNCH_ID (or of every launch not yet stopped); cloud clusters as SkyPilot sees them."""
    from . import ledger

    runs_root = _runs_root(out)
    recs = (
        [ledger.get(launch_id, runs_root)] if launch_id else [r for r in ledger.records(runs_root).values()]
    )
    open_recs = [r for r in recs if not r.stop]
    for rec in recs:
        if rec.stop and (launch_id or rec.provider != "sky"):
            click.echo(f"{rec.launch_id}\t{rec.status}\tstopped {rec.stop}\t{rec.cost_usd} USD")
    for rec in (r for r in open_recs if r.provider != "sky"):
        from . import lifecycle

        launcher = make_launcher(rec.provider, runs_root)
        st = launcher.poll(rec)
        click.echo(
            f"{rec.launch_id}\t{st.state}\t{st.reps_done} rep(s) done\t{st.detail}"
            f"\tdeadline {rec.deadline_at}"
        )
        if st.state in lifecycle.FINAL_STATES:  # over: check its runs, remove the container, close it
            rec = lifecycle.finish(rec, launcher, st, runs_root)
            _err(f"  {rec.launch_id}: {rec.status}, closed in the ledger")
    if any(r.provider == "sky" for r in recs) or not launch_id:
        try:
            state, unchecked = _sky_state()
        except Exception as e:  # noqa: BLE001  (no SkyPilot, no API server: say so, never "nothing running")
            state, unchecked = {}, [f"SkyPilot ({type(e).__name__}: {e})"]
        for name, st in sorted(state.items()):
            click.echo(f"{name}\tSkyPilot: {st}")
        _say_unchecked(unchecked)
        if not state and not open_recs and not unchecked:
            click.echo("no running launches; SkyPilot reports no pack cluster (see `pack launch ledger`)")
        if unchecked:
            sys.exit(1)


@launch_group.command("down")
@click.argument("launch_id")
@_out_opt
def down_cmd(launch_id, out):
    """Tear LAUNCH_ID down now (`sky down` its cluster, or remove the container / stop the process)."""
    from . import ledger, lifecycle

    runs_root = _runs_root(out)
    rec = ledger.get(launch_id, runs_root)
    if rec.provider == "sky":
        from . import cloud

        rec = ledger.record_stop(rec, "down", cloud.down(rec.cluster), runs_root)
    else:
        rec = lifecycle.down(rec, make_launcher(rec.provider, runs_root), runs_root)
    click.echo(f"{launch_id}\t{rec.status}\t{rec.cost_usd}\t{rec.detail}")


@launch_group.command("reap")
@click.option(
    "--provider", "only", type=click.Choice(["docker", "sky"]), help="Only local containers or clusters."
)
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@_out_opt
def reap_cmd(only, dry_run, out):
    """`sky down` every pack cluster past its expiry or not in an open launch; remove expired containers.

    Exits 1 when a cloud could not be checked (no credentials): that is not an all-clear."""
    import time

    from ..errors import LaunchError
    from . import ledger

    runs_root = _runs_root(out)
    recs = ledger.records(runs_root)
    verb = "would remove" if dry_run else "removed"
    found = 0
    try:
        for item in make_launcher("docker", runs_root).reap(time.time(), dry_run) if only != "sky" else []:
            click.echo(f"{verb}\tdocker\t{item['id']}\texpired {item['expired_at']}")
            found += 1
    except LaunchError as e:
        _err(f"reap: skipping local containers: {e}")
    state, unchecked = {}, []
    if only != "docker":
        try:
            state, unchecked = _sky_state()
        except LaunchError as e:
            unchecked = [f"SkyPilot clusters ({e})"]
    by_cluster = {r.cluster: r for r in recs.values() if r.cluster}
    now = ledger.now_iso()
    for name in sorted(state):
        rec = by_cluster.get(name)
        if rec and not rec.stop and ledger.parse_time(rec.expires_at) > ledger.parse_time(now):
            continue  # an open launch within its time: its client tears it down
        why = "not in this ledger" if not rec else ("closed" if rec.stop else f"expired {rec.expires_at}")
        if not dry_run:
            from . import cloud

            detail = cloud.down(name)
            if rec and not rec.stop:
                ledger.record_stop(rec, "reaped", f"{why}; {detail}", runs_root)
        click.echo(f"{verb}\tsky\t{name}\t{why}")
        found += 1
    _say_unchecked(unchecked)
    if unchecked:
        sys.exit(1)
    if not found:
        click.echo("nothing to remove: no expired container, no stray pack cluster")


@launch_group.command("ledger")
@click.option("--json", "as_json", is_flag=True)
@_out_opt
def ledger_cmd(as_json, out):
    """Every launch: rows, provider, cluster, start, stop, hourly price and its source, cost."""
    from dataclasses import asdict

    from . import ledger

    recs = ledger.records(_runs_root(out))
    if as_json:
        from ..fsio import json_text

        click.echo(json_text([asdict(r) for r in recs.values()]))
    else:
        click.echo(ledger.render(recs))


@launch_group.command("images")
@click.option(
    "--check",
    "mode",
    flag_value="check",
    help="Check the generated files and lock headers against images.yaml.",
)
@click.option(
    "--write", "mode", flag_value="write", help="Regenerate Dockerfiles, requirements.in and docker-bake.hcl."
)
@click.option(
    "--lock", "mode", flag_value="lock", help="Resolve requirements.lock per variant (uv pip compile)."
)
@click.argument("variants", nargs=-1)
def images_cmd(mode, variants):
    """Generate, lock or check the image files from manifests/images.yaml (`make lock`, `make images`)."""
    from ..errors import ManifestError
    from . import image_files

    if mode == "write":
        for f in image_files.write_generated():
            click.echo(f"wrote {f}")
    elif mode == "lock":
        for f in image_files.lock(list(variants) or None, log=_err):
            click.echo(f"locked {f}")
    problems = image_files.check_generated()
    if problems:
        raise ManifestError(problems)
    click.echo("ok: Dockerfiles, requirements, locks and docker-bake.hcl match manifests/images.yaml")
