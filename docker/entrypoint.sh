#!/usr/bin/env bash
# Entrypoint of every pack image: run the command it is given (default `pack --help`) under the
# row watchdog. `docker run ecmoe:cu118 pack run exp6a` runs exactly `pack run exp6a`; nothing is
# prepended (an ENTRYPOINT ["pack"] would have turned that into `pack pack run exp6a`).
#
# Watchdog: PACK_DEADLINE_AT (epoch seconds, set by `pack launch`) or PACK_MAX_RUNTIME_S (seconds
# from now) bound the whole command: SIGTERM at the deadline, SIGKILL PACK_KILL_AFTER_S (30) seconds
# later, exit status 124 as with timeout(1). `pack run` also stops each row at its own max runtime;
# this outer limit catches what hangs outside a row (a stuck download, a wedged CUDA context).
set -euo pipefail

if [ "$#" -eq 0 ]; then
  set -- pack --help
fi

# Provenance of the image itself: `pack launch` and `make images-local` pass PACK_IMAGE_DIGEST (from the
# build metadata); otherwise podman says which image it started in /run/.containerenv (podman 4 fills
# it only for --privileged containers), and without either the digest is recorded as unavailable.
if [ -z "${PACK_IMAGE_DIGEST:-}" ] && [ -r /run/.containerenv ]; then
  id=$(sed -n 's/^imageid="\([0-9a-f]\{64\}\)"$/\1/p' /run/.containerenv)
  if [ -n "$id" ]; then export PACK_IMAGE_DIGEST="sha256:$id"; fi
fi

is_int() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }

limit=""
if [ -n "${PACK_DEADLINE_AT:-}" ]; then
  if ! is_int "$PACK_DEADLINE_AT"; then
    echo "pack-entrypoint: PACK_DEADLINE_AT must be epoch seconds, got '$PACK_DEADLINE_AT'" >&2
    exit 2
  fi
  limit=$(( PACK_DEADLINE_AT - $(date +%s) ))
  if [ "$limit" -le 0 ]; then
    echo "pack-entrypoint: the deadline (epoch $PACK_DEADLINE_AT) has passed; not starting: $*" >&2
    exit 124
  fi
elif [ -n "${PACK_MAX_RUNTIME_S:-}" ]; then
  if ! is_int "$PACK_MAX_RUNTIME_S" || [ "$PACK_MAX_RUNTIME_S" -eq 0 ]; then
    echo "pack-entrypoint: PACK_MAX_RUNTIME_S must be a positive whole number of seconds, got '$PACK_MAX_RUNTIME_S'" >&2
    exit 2
  fi
  limit=$PACK_MAX_RUNTIME_S
fi

if [ -n "$limit" ]; then
  echo "pack-entrypoint: watchdog stops '$*' after ${limit} s" >&2
  exec timeout --signal=TERM --kill-after="${PACK_KILL_AFTER_S:-30}" "$limit" "$@"
fi
exec "$@"
