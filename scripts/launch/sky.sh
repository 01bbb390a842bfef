#!/usr/bin/env bash
# Launch ROW|PAPER on SkyPilot clusters through `pack launch`, one cluster per row (default
# HW=g6e.xlarge, Paper B's L40S; any aws or runpod class of manifests/hardware.yaml). Needs the cloud
# extra, SkyPilot credentials (`sky check`), and PACK_IMAGE_PREFIX naming the registry of the images.
#   HW=g6e.xlarge BUDGET_USD=5 scripts/launch/sky.sh paperB --parallel 3
set -euo pipefail
if [ "$#" -lt 1 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  echo "usage: HW=g6e.xlarge $0 ROW|PAPER [--parallel N] [--scale smoke|full] [pack launch options]" >&2
  exit 2
fi
cd "$(dirname "$0")/../.."
exec ${PACK:-pack} launch "$@" --hw "${HW:-g6e.xlarge}"
