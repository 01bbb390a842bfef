"""Launch settings (pack/launch/providers.yaml) and the environment variables that override them.

PACK_S3_BUCKET / PACK_S3_PREFIX / PACK_S3_ENDPOINT_URL   where remote launches put results
PACK_EC2_AMI, PACK_EC2_INSTANCE_PROFILE, PACK_EC2_SUBNET_ID, PACK_EC2_KEY_NAME,
PACK_EC2_SECURITY_GROUP_IDS (comma-separated)              EC2 launch options
PACK_IMAGE_PREFIX                                         registry/repository of the pack images
PACK_IMAGES_METADATA                                      buildx metadata file (digests)
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ..errors import LaunchError
from ..yamlio import load_with_lines

PROVIDERS_FILE = Path(__file__).with_name("providers.yaml")


@lru_cache(maxsize=1)
def providers() -> dict:
    data, _ = load_with_lines(PROVIDERS_FILE, expect=dict)
    return data


def provider(name: str) -> dict:
    return providers().get(name, {})


def results_uri(launch_id: str, explicit: str | None = None) -> str:
    """s3://bucket/prefix/<launch_id> (or file://… for a local sink): where a remote launch's results go."""
    if explicit:
        base = explicit.rstrip("/")
    else:
        bucket = os.environ.get("PACK_S3_BUCKET", "").strip()
        if not bucket:
            raise LaunchError(
                "a remote launch needs somewhere to put results: set PACK_S3_BUCKET to an S3 bucket "
                "you can write to (and optionally PACK_S3_PREFIX), or pass --results s3://bucket/prefix"
            )
        prefix = os.environ.get("PACK_S3_PREFIX", "pack-launches").strip("/")
        base = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    return f"{base}/{launch_id}"
