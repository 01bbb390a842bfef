"""`pack launch ROW|PAPER --hw HW` and `pack launch plan|status|fetch|down|reap|ledger|ami|images`.

Only click is imported at module level: `pack --help` must stay light. Everything else (boto3,
runpod, the planner) is imported inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

PROVIDERS = ("docker", "ec2", "runpod")


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


def make_launcher(provider: str, runs_root: Path):
    if provider == "local":
        from .local import LocalLauncher

        return LocalLauncher(runs_root)
    if provider == "docker":
        from .docker import DockerLauncher

        return DockerLauncher(runs_root)
    if provider == "ec2":
        from .ec2 import EC2Launcher

        return EC2Launcher(runs_root)
    if provider == "runpod":
        from .runpod import RunPodLauncher

        return RunPodLauncher(runs_root)
    from ..errors import PackError

    raise PackError(f"unknown provider '{provider}'; known: local, docker, ec2, runpod")


def provider_for(hardware, image: str | None) -> str:
    if hardware.provider == "local":
        return "docker" if image else "local"
    return {"aws": "ec2", "runpod": "runpod"}[hardware.provider]


@click.group("launch", cls=_LaunchGroup)
def launch_group():
    """Run rows on the hardware they need: here, in a local container, on EC2 or on RunPod.

    \b
      pack launch exp6a --hw runpod-h100-sxm        plan, budget gate, launch, wait, fetch, tear down
      pack launch paperB --hw g6e.xlarge --detach   start and return; reattach later
      pack launch wire-compression --hw local --image cu128   inside a local pack image
      pack launch status [ID] | fetch ID | down ID | reap | ledger

    Launch options (`pack launch ROW --help`): --scale, --image, --budget, --detach, --results,
    --dry-run, --poll, --out.

    Every launch has a deadline (rows' max runtimes + boot overhead) carried by the resource
    itself, and lands in runs/ledger.jsonl. BUDGET_USD (or --budget) refuses a launch whose
    worst case costs more, before anything is created.
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


@launch_group.command("plan")
@click.argument("refs", nargs=-1, required=True)
@_options
@click.option("--json", "as_json", is_flag=True)
def plan_cmd(refs, hw, scale, budget, as_json):
    """Per-row time and cost of launching REFS on HW, the deadline, and the budget gate."""
    from .. import planning
    from . import settings

    name, have = _hardware(hw)
    cfg = settings.provider(provider_for(have, None))
    p = planning.launch_plan(
        list(refs), hw, scale, overhead_s=cfg.get("overhead_s", 0), grace_s=cfg.get("grace_s", 300)
    )
    b = planning.budget_from_env(budget)
    if as_json:
        from ..fsio import json_text

        click.echo(json_text(p | {"budget_usd": b}))
    else:
        click.echo(planning.render(p))
        if b is not None:
            click.echo(f"budget: {b:.2f} USD")
    planning.check_budget(p, b)


def build_specs(
    refs,
    hw: str,
    scale: str,
    *,
    budget: float | None = None,
    image: str | None = None,
    results: str | None = None,
    log=_err,
):
    """Plan, refuse what cannot run, gate on the budget, and return (specs, provider, plan).

    One launch runs one image, so rows that ask for different images become one launch each
    (seed 001's exp6a in cu118, exp6b in cu121, exp0 in cu128), each with its own deadline and
    its own boot overhead, all counted by the budget gate. Nothing is created here: every refusal
    happens before a launcher is touched."""
    import math

    from .. import planning
    from . import images, settings
    from .spec import LaunchSpec, new_launch_id

    name, have = _hardware(hw)
    provider = provider_for(have, image)
    if provider in ("ec2", "runpod") or image:
        images.choose_variant([], image)  # an unknown --image fails before planning
    cfg = settings.provider(provider)
    overhead, grace = cfg.get("overhead_s", 0), int(cfg.get("grace_s", 300))
    p = planning.launch_plan(list(refs), hw, scale, overhead_s=overhead, grace_s=grace)
    groups: dict = {}
    for i in p["rows_ok"]:
        variant = (
            None if provider == "local" else images.choose_variant([i["image"]] if i["image"] else [], image)
        )
        groups.setdefault(variant, []).append(i)
    if len(groups) > 1:  # one launch per image: each pays its own overhead and grace
        price = p["price_usd_per_hour"]
        p["launches"] = len(groups)
        p["worst_case_usd"] = round(
            sum(
                (math.ceil(sum(i["max_runtime_s"] for i in g) + overhead) + grace) / 3600 * price
                for g in groups.values()
            ),
            4,
        )
        p["estimate_usd"] = round(
            sum((sum(i["runtime_estimate_s"] for i in g) + overhead) / 3600 * price for g in groups.values()),
            4,
        )
    log(planning.render(p))
    for i in p["refused"]:
        log(f"skip {i['paper']}:{i['row']}: {i['why']} on {p['hardware']}")
    planning.check_budget(p, planning.budget_from_env(budget))
    specs = []
    for variant, items in groups.items():
        ref = digest = None
        if variant:
            ref, digest = images.image_ref(variant, remote=provider in ("ec2", "runpod"))
        launch_id = new_launch_id()
        while any(s.launch_id == launch_id for s in specs):
            launch_id = new_launch_id()
        specs.append(
            LaunchSpec(
                launch_id=launch_id,
                refs=tuple(refs),
                rows=tuple(f"{i['paper']}:{i['row']}" for i in items),
                scale=scale,
                hardware_name=p["hardware"],
                hardware=have,
                image_variant=variant,
                image_ref=ref,
                image_digest=digest,
                deadline_s=math.ceil(sum(i["max_runtime_s"] for i in items) + overhead),
                grace_s=grace,
                results=settings.results_uri(launch_id, results) if provider in ("ec2", "runpod") else None,
            )
        )
    return specs, provider, p


def build_spec(refs, hw: str, scale: str, **kwargs):
    """`build_specs` for rows that share one image: (spec, provider, plan)."""
    specs, provider, p = build_specs(refs, hw, scale, **kwargs)
    if len(specs) != 1:
        from ..errors import LaunchError

        raise LaunchError(
            f"these rows need {len(specs)} images ({', '.join(s.image_variant for s in specs)})"
        )
    return specs[0], provider, p


@launch_group.command("start", hidden=True)
@click.argument("refs", nargs=-1, required=True)
@_options
@click.option(
    "--image", help="Run inside this image variant (manifests/images.yaml); default: the rows' own."
)
@click.option("--detach", is_flag=True, help="Return once the rows run; reattach with status / fetch.")
@click.option(
    "--results", help="Where a remote launch puts results (default s3://$PACK_S3_BUCKET/$PACK_S3_PREFIX)."
)
@click.option("--dry-run", is_flag=True, help="Plan and check the budget, launch nothing.")
@click.option(
    "--poll", "poll_s", type=float, default=30.0, show_default=True, help="Seconds between status polls."
)
@click.option("--out", type=click.Path(path_type=Path), help="Runs directory (default ./runs or $PACK_RUNS).")
def start_cmd(refs, hw, scale, budget, image, detach, results, dry_run, poll_s, out):
    """Launch REFS (row ids or paper names) on HW."""
    from . import lifecycle

    specs, provider, _ = build_specs(refs, hw, scale, budget=budget, image=image, results=results)
    if dry_run:
        for spec in specs:
            _err(
                f"dry run: would launch {len(spec.rows)} row(s) on {provider} ({spec.hardware_name})"
                + (f" in {spec.image_ref}" if spec.image_ref else "")
                + "; nothing was created"
            )
        return
    failed = 0
    for spec in specs:  # one image per launch; detached launches all start, attached ones run in turn
        launcher = make_launcher(provider, _runs_root(out))
        rec = lifecycle.start(spec, launcher, wait=not detach, poll_s=poll_s)
        cost = rec.get("cost_usd")
        click.echo(f"{rec['launch_id']}\t{rec.get('status')}\t{cost if cost is not None else '-'}")
        failed += not detach and rec.get("status") != "finished"
    if failed:
        sys.exit(1)


def _load(launch_id: str, out: Path | None):
    from . import ledger

    runs_root = _runs_root(out)
    rec = ledger.get(launch_id, runs_root)
    return rec, make_launcher(rec["provider"], runs_root), runs_root


_out_opt = click.option("--out", type=click.Path(path_type=Path), help="Runs directory holding ledger.jsonl.")


@launch_group.command("status")
@click.argument("launch_id", required=False)
@_out_opt
def status_cmd(launch_id, out):
    """State and progress of LAUNCH_ID (or of every launch not yet stopped)."""
    from . import ledger

    runs_root = _runs_root(out)
    recs = (
        [ledger.get(launch_id, runs_root)]
        if launch_id
        else [r for r in ledger.records(runs_root).values() if not r.get("stop")]
    )
    if not recs:
        click.echo("no running launches (see `pack launch ledger`)")
        return
    for rec in recs:
        if rec.get("stop"):
            click.echo(
                f"{rec['launch_id']}\t{rec.get('status')}\tstopped {rec['stop']}\t{rec.get('cost_usd')} USD"
            )
            continue
        st = make_launcher(rec["provider"], runs_root).poll(rec)
        click.echo(
            f"{rec['launch_id']}\t{st.state}\t{st.reps_done} rep(s) done\t{st.detail}\tdeadline {rec['deadline_at']}"
        )
        if st.state in ("finished", "failed", "gone", "expired"):
            _err(f"  fetch the results and close it: pack launch fetch {rec['launch_id']}")


@launch_group.command("fetch")
@click.argument("launch_id")
@_out_opt
def fetch_cmd(launch_id, out):
    """Copy LAUNCH_ID's runs into the runs directory (and close it in the ledger once it is over)."""
    from . import lifecycle

    rec, launcher, runs_root = _load(launch_id, out)
    lifecycle.fetch_into(rec, launcher, runs_root)
    if not rec.get("stop"):
        st = launcher.poll(rec)
        if st.state in lifecycle.FINAL_STATES:
            rec = lifecycle.finish(rec, launcher, st, runs_root)
            _err(f"{launch_id}: {rec['status']}, {rec['cost_usd']} USD")
        else:
            _err(f"{launch_id} is still {st.state}; these are partial results")
    click.echo(str(runs_root))


@launch_group.command("down")
@click.argument("launch_id")
@_out_opt
def down_cmd(launch_id, out):
    """Tear LAUNCH_ID down now (terminate the instance / remove the pod or container)."""
    from . import lifecycle

    rec, launcher, runs_root = _load(launch_id, out)
    rec = lifecycle.down(rec, launcher, runs_root)
    click.echo(f"{launch_id}\t{rec.get('status')}\t{rec.get('cost_usd')}")


@launch_group.command("reap")
@click.option("--provider", "only", type=click.Choice(PROVIDERS), multiple=True, help="Only these providers.")
@click.option("--dry-run", is_flag=True, help="List what is past its expiry; remove nothing.")
@_out_opt
def reap_cmd(only, dry_run, out):
    """Remove every pack resource (instance, pod, container) whose expiry has passed."""
    import time

    from ..errors import LaunchError
    from . import ledger

    runs_root = _runs_root(out)
    found = []
    for provider in only or PROVIDERS:
        launcher = make_launcher(provider, runs_root)
        try:
            launcher.check_credentials()
            found += launcher.reap(time.time(), dry_run)
        except LaunchError as e:
            if only:
                raise
            _err(f"reap: skipping {provider}: {e}")
    recs = ledger.records(runs_root)
    for item in found:
        click.echo(
            f"{'would remove' if dry_run else 'removed'}\t{item['provider']}\t{item['id']}\texpired {item['expired_at']}"
        )
        lid = item.get("launch_id") or next(
            (r["launch_id"] for r in recs.values() if r.get("handle", {}).get("instance_id") == item["id"]),
            None,
        )
        if lid in recs and not dry_run:
            ledger.record_stop(recs[lid], "reaped", f"expired {item['expired_at']}", runs_root)
    if not found:
        click.echo("nothing past its expiry")


@launch_group.command("ledger")
@click.option("--json", "as_json", is_flag=True)
@_out_opt
def ledger_cmd(as_json, out):
    """Every launch: rows, provider, instance, start, stop, hourly price, cost."""
    from . import ledger

    recs = ledger.records(_runs_root(out))
    if as_json:
        from ..fsio import json_text

        click.echo(json_text(list(recs.values())))
    else:
        click.echo(ledger.render(recs))


@launch_group.command("ami")
@click.option("--region", default="us-east-1", show_default=True)
def ami_cmd(region):
    """Which AMI an EC2 launch in REGION would use, and why (to pin it)."""
    from .ec2 import EC2Launcher

    launcher = EC2Launcher(Path("."))
    ami, _, note = launcher.resolve_ami(region)
    _err(note)
    click.echo(ami)


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
