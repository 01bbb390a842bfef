"""The pack's SkyPilot admin policy: no cluster launches without autodown and an idle limit.

A paper's rows are batch jobs; a cluster left up after its row is only cost. `pack launch` applies
the policy to every launch it makes (`with_policy`, SkyPilot's own client-side policy hook); a user
can register it for their own `sky launch` too, in ~/.sky/config.yaml:

    admin_policy: pack.launch.policy.RequireAutodown

Importing this module imports SkyPilot (the cloud extra).
"""

from __future__ import annotations

import contextlib

import sky
from sky import exceptions, skypilot_config
from sky.server.requests.request_names import AdminPolicyRequestName

POLICY = f"{__name__}.RequireAutodown"


class RequireAutodown(sky.AdminPolicy):
    """Refuse a cluster launch unless it autodowns (down=True) after a set idle time."""

    @classmethod
    def validate_and_mutate(cls, user_request: sky.UserRequest) -> sky.MutatedUserRequest:
        if user_request.request_name == AdminPolicyRequestName.CLUSTER_LAUNCH:
            opts = user_request.request_options
            stops = [r.autostop_config for r in user_request.task.resources]
            ok = (
                opts is not None
                and opts.down
                and opts.idle_minutes_to_autostop is not None
                and all(a is not None and a.enabled and a.down for a in stops)
            )
            if not ok:
                raise exceptions.UserRequestRejectedByPolicy(
                    "pack's policy refuses a cluster without autodown: launch with `--down` and an idle "
                    "limit (`-i MINUTES`), as `pack launch` does"
                )
        return sky.MutatedUserRequest(task=user_request.task, skypilot_config=user_request.skypilot_config)


@contextlib.contextmanager
def with_policy():
    """SkyPilot's config for this request with the pack's policy registered (the user's file untouched)."""
    config = skypilot_config.to_dict()
    config.set_nested(("admin_policy",), POLICY)
    with skypilot_config.replace_skypilot_config_in_process(config):
        yield
