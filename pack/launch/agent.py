"""The in-pod agent: `python -m pack.launch.agent …`, the start command of a RunPod launch.

    1. past the deadline already (the pod restarted late)? write status "expired", remove the pod
    2. status "running"; run `pack run ROWS --scale S --out /runs --hw HW` until the deadline
    3. every PACK_AGENT_SYNC_S (120) seconds, upload the runs tree so `pack launch status` sees progress
    4. upload everything, status "finished" with pack run's exit status (124: stopped at the deadline)
    5. remove its own pod through the RunPod API (RUNPOD_POD_ID, RUNPOD_API_KEY are set by RunPod)

Step 5 runs whatever happened before it (finally), so a pod never idles after its rows: that is
the "instance self-termination" layer for RunPod. It runs outside a pod too (no RUNPOD_POD_ID:
nothing to remove), which is how the tests run it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import shell
from .sink import open_sink, write_status
from .spec import CONTAINER_RUNS, pack_run_argv


def _log(msg: str) -> None:
    print(f"pack-agent: {msg}", file=sys.stderr, flush=True)


def remove_own_pod() -> str:
    pod_id = os.environ.get("RUNPOD_POD_ID")
    if not pod_id:
        return "not in a RunPod pod; nothing to remove"
    if os.environ.get("PACK_AGENT_KEEP_POD") == "1":
        return f"PACK_AGENT_KEEP_POD=1: leaving pod {pod_id} (the reaper removes it after its expiry)"
    try:
        import runpod

        runpod.api_key = os.environ.get("RUNPOD_API_KEY") or runpod.api_key
        runpod.terminate_pod(pod_id)
        return f"removed pod {pod_id}"
    except Exception as e:  # never let the clean-up hide the result; the reaper is the next layer
        return f"could not remove pod {pod_id} ({type(e).__name__}: {e}); `pack launch reap` will after its expiry"


def run(args) -> int:
    results = args.results or os.environ.get("PACK_RESULTS")
    if not results:
        _log("no results location: pass --results or set PACK_RESULTS")
        return 2
    sink = open_sink(results)
    out = Path(args.out)
    rc, final = 125, "finished"
    try:
        if time.time() >= args.deadline_at:
            rc, final = 124, "expired"
            _log("the deadline has passed (a pod restart?); not running the rows again")
            return rc
        out.mkdir(parents=True, exist_ok=True)
        write_status(sink, "running", pod_id=os.environ.get("RUNPOD_POD_ID"))
        argv = pack_run_argv(args.rows.split(","), args.scale, str(out), args.hw)
        _log("running " + shell.quote(argv))
        stop = threading.Event()

        def sync_loop():
            while not stop.wait(float(os.environ.get("PACK_AGENT_SYNC_S", "120"))):
                try:
                    sink.upload_dir(out, "runs")
                except Exception as e:  # a failed partial upload must not stop the rows
                    _log(f"partial upload failed: {e}")

        syncer = threading.Thread(target=sync_loop, daemon=True)
        syncer.start()
        proc = shell.spawn(argv)
        try:
            rc = proc.wait(timeout=max(1.0, args.deadline_at - time.time()))
        except subprocess.TimeoutExpired:
            _log("deadline reached; stopping pack run")
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            rc = 124
        finally:
            stop.set()
            if proc.poll() is None:  # SIGTERM reached the agent, not its child: stop the child too
                proc.terminate()
        _log(f"pack run exited with status {rc}")
        return rc
    finally:
        try:
            n = sink.upload_dir(out, "runs") if out.is_dir() else 0
            _log(f"uploaded {n} file(s) to {sink.uri}/runs")
            write_status(sink, final, exit_code=rc, pod_id=os.environ.get("RUNPOD_POD_ID"))
        except Exception as e:
            _log(f"final upload failed: {type(e).__name__}: {e}")
        _log(remove_own_pod())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m pack.launch.agent", description=__doc__.splitlines()[0])
    p.add_argument("--launch-id", required=True)
    p.add_argument("--rows", required=True, help="comma-separated paper:row ids")
    p.add_argument("--scale", default="full", choices=["smoke", "full"])
    p.add_argument("--hw", required=True)
    p.add_argument("--deadline-at", type=float, required=True, help="epoch seconds")
    p.add_argument("--results", help="s3://bucket/prefix/<launch-id> (default $PACK_RESULTS)")
    p.add_argument("--out", default=CONTAINER_RUNS)
    args = p.parse_args(argv)
    # SIGTERM (pod stopped, watchdog) -> SystemExit, so the finally block still uploads and cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
