#!/usr/bin/env bash
# Launch ROW|PAPER on EC2 through `pack launch` (default HW=g6e.xlarge, Paper B's L40S).
# Needs AWS credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), PACK_S3_BUCKET,
# PACK_EC2_INSTANCE_PROFILE, and PACK_IMAGE_PREFIX naming the registry the images were pushed to.
#   HW=g6e.xlarge BUDGET_USD=5 scripts/launch/ec2.sh paperB --detach
#   pack launch status | fetch ID | down ID     (reattach later)
set -euo pipefail
if [ "$#" -lt 1 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  echo "usage: HW=g6e.xlarge $0 ROW|PAPER [--detach] [--scale smoke|full] [pack launch options]" >&2
  exit 2
fi
cd "$(dirname "$0")/../.."
exec ${PACK:-pack} launch "$@" --hw "${HW:-g6e.xlarge}"
