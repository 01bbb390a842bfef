"""`pack launch ROW --hw local|cpu|local-gpu`: run the rows here, as a child `pack run`, in the foreground.

The child is the same `pack run ROWS --scale S --out RUNS --hw HW` a container would run. Its
per-row watchdog (max runtime) is pack run's own; this launcher adds the launch deadline (the child
is stopped if it outlives it) and the ledger entry. Ctrl-C reaches the child too (same process
group): it keeps its finished repetitions, and `pack run … --resume` continues them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ..rundir import count_finished_reps
from . import shell
from .ledger import Handle, LaunchRecord
from .lifecycle import Launcher, Status
from .spec import LaunchSpec


class LocalLauncher(Launcher):
    provider = "local"
    detached = False

    def provision(self, spec: LaunchSpec, handle: Handle) -> None:
        handle.host = os.uname().nodename

    def execute(self, spec: LaunchSpec, handle: Handle) -> None:
        argv = spec.pack_run_argv(out=str(self.runs_root))
        # `python -m pack` rather than whatever `pack` is first on PATH: the same code as this process.
        cmd = [sys.executable, "-m", "pack", *argv[1:]]
        env = os.environ | {"PACK_LAUNCH_ID": spec.launch_id}
        handle.command = shell.quote(argv)
        proc = shell.spawn(cmd, env=env)
        handle.pid = proc.pid
        try:
            rc = proc.wait(timeout=max(1.0, spec.deadline_at - time.time()))
        except subprocess.TimeoutExpired:
            self.log(f"{spec.launch_id}: past the launch deadline; stopping pack run (pid {proc.pid})")
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            rc = 124
        except KeyboardInterrupt:
            # The child got the same SIGINT; give it time to write its interrupted run record.
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        handle.exit_code = rc

    def poll(self, rec: LaunchRecord) -> Status:
        rc = rec.handle.exit_code
        if rc is None:
            return Status("gone", "the local process is no longer tracked")
        reps = count_finished_reps(self.runs_root, rec.rows)
        return Status("finished" if rc == 0 else "failed", f"pack run exited with status {rc}", reps, rc)

    def teardown(self, rec: LaunchRecord) -> str:
        pid = rec.handle.pid
        if pid and rec.handle.exit_code is None:
            try:
                os.kill(pid, 15)
                return (
                    f"stopped pack run (pid {pid}); continue it with `pack run {' '.join(rec.rows)} --resume`"
                )
            except ProcessLookupError:
                pass
        return "local process finished; nothing to remove"

    def where(self, rec: LaunchRecord) -> str:
        return f"this machine ({rec.handle.host or 'local'})"
