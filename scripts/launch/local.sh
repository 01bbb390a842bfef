#!/usr/bin/env bash
# Run ROW|PAPER on this machine through `pack launch` (deadline, ledger); add --image VARIANT to
# run inside a local pack image. Everything after ROW|PAPER goes to `pack launch` unchanged.
#   scripts/launch/local.sh wire-compression --scale smoke
#   scripts/launch/local.sh paperB --image l40s
set -euo pipefail
if [ "$#" -lt 1 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  echo "usage: $0 ROW|PAPER [--image VARIANT] [--scale smoke|full] [pack launch options]" >&2
  exit 2
fi
cd "$(dirname "$0")/../.."
exec ${PACK:-pack} launch "$@" --hw "${HW:-local}"
