"""Launchers: run rows where they need to run (here, a local container, EC2, RunPod).

    cli.py        `pack launch …` (click only at import time)
    lifecycle.py  plan → provision → sync → execute → fetch → teardown, ledger, Ctrl-C handling
    spec.py       one launch: rows, image, deadline, the exact `pack run` command
    local.py docker.py ec2.py (+ userdata.py) runpod.py (+ agent.py)   the providers
    shell.py      every subprocess          ledger.py  runs/ledger.jsonl
    sink.py       results + status in S3 or a folder    images.py  image names, digests, Dockerfile checks
    settings.py   providers.yaml and the environment variables that override it

Nothing here imports boto3 or runpod at module level.
"""
