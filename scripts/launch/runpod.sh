#!/usr/bin/env bash
# Launch ROW|PAPER on RunPod through `pack launch` (default HW=runpod-h100-sxm); the pack image is
# the pod image. Needs RUNPOD_API_KEY (or `runpod config`), PACK_S3_BUCKET, PACK_IMAGE_PREFIX, and
# the RunPod secrets named in pack/launch/providers.yaml holding an S3 key for the results bucket.
#   HW=runpod-h100-sxm-x4 scripts/launch/runpod.sh exp7 --detach
set -euo pipefail
if [ "$#" -lt 1 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  echo "usage: HW=runpod-h100-sxm $0 ROW|PAPER [--detach] [--scale smoke|full] [pack launch options]" >&2
  exit 2
fi
cd "$(dirname "$0")/../.."
exec ${PACK:-pack} launch "$@" --hw "${HW:-runpod-h100-sxm}"
