#!/usr/bin/env bash
# `make images-local`: build the variants that this machine can build from reachable sources (PyPI and
# Debian only) with podman on the Debian base of `make base-local`, then run each one's smoke rows
# inside it exactly as a user would and verify them from the host.
#
#   docker/build-local.sh BASE_IMAGE [VARIANT...]   (no VARIANT: every variant with local.build true)
#
# For each image it records into build/images-metadata.json (the file `pack launch` reads digests from)
# and build/images-local/<variant>.json: build seconds, size, image id, digest, and each smoke verdict.
# Environment: PACK=pack CLI on the host, RUNS=host runs folder (default build/images-local/runs),
# HOST_CA=CA bundle mounted at the same path into the build (pip config's `cert`), SMOKE=0 skips runs.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: build-local.sh BASE_IMAGE [VARIANT...]}; shift
PACK=${PACK:-.venv/bin/pack}
PY=${PY:-.venv/bin/python}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
out=build/images-local
RUNS=${RUNS:-$out/runs}
podman=(podman --runtime runc)
run_opts=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
mkdir -p "$out" "$RUNS"

plan=$("$PY" - "$@" <<'EOF'
import sys
from pack import catalog
cat = catalog.images()
for name in sys.argv[1:] or [n for n, v in cat.variants.items() if v.local.build]:
    v = cat.variants.get(name)
    if v is None:
        sys.exit(f"build-local.sh: unknown variant '{name}' (manifests/images.yaml lists {', '.join(cat.variants)})")
    if not v.local.build:
        print(f"SKIP\t{name}\t{' '.join(v.local.why.split())}")
    else:
        print(f"BUILD\t{name}\t{cat.prefix}:{name}\t{' '.join(v.local.skip_compile)}\t{' '.join(v.local.smoke)}")
EOF
)
git_sha=$(git rev-parse HEAD 2>/dev/null || echo unknown)
failed=()
while IFS=$'\t' read -r what name image skip smoke; do
  if [ "$what" = SKIP ]; then
    echo "images-local: NOT building $name: $image" >&2
    continue
  fi
  echo "images-local: building $image on $base (skipped: ${skip:-nothing})" >&2
  t0=$(date +%s)
  nice -n 10 "${podman[@]}" build --format docker --network host -v "$HOST_CA:$HOST_CA:ro" \
    --build-arg BASE_IMAGE="$base" --build-arg PYTHON_SOURCE=system --build-arg SKIP_COMPILE="$skip" \
    --build-arg GIT_SHA="$git_sha" --build-arg MAX_JOBS=2 --build-arg UV_CACHE=0 \
    -f "docker/$name/Dockerfile" -t "$image" .
  build_s=$(( $(date +%s) - t0 ))
  "${podman[@]}" image prune -f > /dev/null  # the previous build's untagged layers: disk is the limit here
  id=$("${podman[@]}" image inspect --format '{{.Id}}' "$image")
  digest=$("${podman[@]}" image inspect --format '{{.Digest}}' "$image")
  size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
  echo "images-local: $image built in ${build_s} s: id sha256:$id, digest $digest, $size bytes" >&2
  verdicts=()
  if [ "${SMOKE:-1}" != 0 ]; then
    for row in $smoke; do
      # Exactly what a user types, plus this machine's runtime flags and the host's uid for the runs folder.
      t1=$(date +%s)
      rc=0
      res=$("${podman[@]}" run --rm "${run_opts[@]}" --user "$(id -u):$(id -g)" -v "$(realpath "$RUNS"):/runs" \
        -e PACK_IMAGE_DIGEST="sha256:$id" \
        "$image" pack run "$row" --scale smoke) || rc=$?
      echo "$res"
      run_s=$(( $(date +%s) - t1 ))
      # stdout: ROW<TAB>STATUS<TAB>/runs/…: verify that run folder from the host
      v=none
      for dir in $(echo "$res" | awk -F'\t' '$3 ~ /^\/runs\// {print $3}'); do
        v=$("$PACK" verify "$RUNS/${dir#/runs/}" --brief 2>&1 | grep -v '^rows:' | tr -s ' \t' ' ' | tr '\n' ';' || true)
      done
      echo "images-local: $image: pack run $row --scale smoke exited $rc in ${run_s} s; verify: $v" >&2
      verdicts+=("$row: exit $rc in ${run_s} s; verify: $v")
      if [ "$rc" != 0 ] || [[ "$v" != *PASS* ]] || [[ "$v" =~ FAIL|ERROR|MISSING|CONTAMINATED ]]; then failed+=("$image $row"); fi
    done
  fi
  "$PY" - "$name" "$image" "$id" "$digest" "$size" "$build_s" "$base" "$skip" "${verdicts[@]}" <<'EOF'
import json, sys, time
from pathlib import Path
name, image, iid, digest, size, build_s, base, skip, *verdicts = sys.argv[1:]
rec = {"image.name": image, "containerimage.digest": f"sha256:{iid}", "registry.digest": digest,
       "size_bytes": int(size), "build_s": int(build_s), "base": base, "skip_compile": skip.split(),
       "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "smoke": verdicts}
Path(f"build/images-local/{name}.json").write_text(json.dumps(rec, indent=2) + "\n")
meta = Path("build/images-metadata.json")
data = json.loads(meta.read_text()) if meta.is_file() else {}
data[name] = rec
meta.write_text(json.dumps(data, indent=2) + "\n")
print(json.dumps(rec, indent=2))
EOF
done <<< "$plan"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "images-local: smoke rows that did not run and PASS inside their image: ${failed[*]}" >&2
  exit 1
fi
