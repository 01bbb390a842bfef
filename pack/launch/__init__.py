"""Launchers: run rows where they need to run (here, in a local container, on SkyPilot clusters).

    cli.py        `pack launch …` (click only at import time)
    cloud.py      one SkyPilot cluster per row: task, launch, fetch, verify, sky.down; status/reap
    policy.py     the SkyPilot admin policy: no launch without autodown
    offline.py    SkyPilot's optimizer on the pack's catalog (manifests/sky-catalog), no credentials
    lifecycle.py  local launches: provision → execute → wait → teardown, Ctrl-C handling
    local.py docker.py   the local launchers        spec.py   one local launch
    ledger.py     runs/ledger.jsonl (typed LaunchRecord)      shell.py  every subprocess
    images.py, image_files.py   image names, digests, Dockerfiles    settings.py  providers.yaml

Nothing here imports SkyPilot at module level except policy.py (imported only by cloud launches).
"""
