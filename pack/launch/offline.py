"""SkyPilot's optimizer on the pack's own catalog, offline, without touching the user's ~/.sky.

`prepare(home)` makes a SkyPilot home: the catalog files of manifests/sky-catalog under
`.sky/catalogs/v8/` (without `.meta` md5s, so SkyPilot treats them as hand-written and never
downloads over them), `allowed_clouds: [AWS, RunPod]`, and the enabled-clouds cache seeded as if
`sky check` had passed. `choose(resources)` runs the optimizer there in a child process (SkyPilot
reads HOME when it is imported) and returns what it picked and at what hourly price: the figure
`pack launch plan` prints beside the pack's. Tests use the same two functions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import catalog
from ..errors import LaunchError

CLOUDS = ("AWS", "RunPod")


def prepare(home: Path) -> Path:
    """Copy the pack's catalog into HOME/.sky and write its config; returns HOME."""
    dest = home / ".sky" / "catalogs" / "v8"
    shutil.copytree(catalog.sky_catalog_dir() / "v8", dest, dirs_exist_ok=True)
    (home / ".sky" / "config.yaml").write_text(f"allowed_clouds: [{', '.join(CLOUDS)}]\n")
    return home


def seed_enabled_clouds(clouds: tuple[str, ...] = CLOUDS) -> None:
    """In a process whose HOME was prepared: record `clouds` as checked (no credentials asked)."""
    from sky import global_user_state, skypilot_config
    from sky.clouds.cloud import CloudCapability

    ws = skypilot_config.get_active_workspace()
    global_user_state.set_allowed_clouds(list(CLOUDS), ws)
    global_user_state.set_enabled_clouds(list(clouds), CloudCapability.COMPUTE, ws)


def _optimize(resources: list[dict]) -> list[dict]:
    """Child side: optimize one single-task DAG per resources dict."""
    import sky
    from sky import optimizer

    seed_enabled_clouds()
    out = []
    for kw in resources:
        task = sky.Task(name="pack-plan", run="true")
        task.set_resources(sky.Resources(**kw))
        dag = sky.Dag()
        dag.add(task)
        try:
            optimizer.Optimizer.optimize(dag, quiet=True)
        except Exception as e:  # noqa: BLE001  (SkyPilot's refusal is the answer, in one line)
            out.append({"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"})
            continue
        best = task.best_resources
        out.append(
            {
                "cloud": str(best.cloud),
                "region": best.region,
                "instance_type": best.instance_type,
                "accelerators": best.accelerators,
                "usd_per_hour": round(best.get_cost(3600), 6),
                "image_id": best.image_id,
            }
        )
    return out


def choose(resources: list[dict]) -> list[dict]:
    """SkyPilot's choice for each resources dict, optimized on the pack's catalog in a scratch home."""
    with tempfile.TemporaryDirectory(prefix="pack-sky-") as tmp:
        home = prepare(Path(tmp))
        env = os.environ | {"HOME": str(home), "SKYPILOT_DISABLE_USAGE_COLLECTION": "1"}
        env.pop("SKYPILOT_CONFIG", None)
        code = f"import json, sys; from {__name__} import _optimize as o; o = o(json.load(sys.stdin))"
        code += "; print(json.dumps(o))"
        res = subprocess.run(
            [sys.executable, "-c", code], input=json.dumps(resources), env=env, capture_output=True, text=True
        )
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise LaunchError(f"SkyPilot's optimizer did not run on the pack's catalog: {last}")
    return json.loads(res.stdout.strip().splitlines()[-1])
