#!/usr/bin/env bash
# What every pack image's build does, once for all four Dockerfiles (they only set build arguments).
#
#   build-env.sh environment   OS packages, uv (from PyPI, hashed), Python, /opt/venv, torch + CUDA wheels
#   build-env.sh packages      the rest of the lock (hashes required), then the compile_from_source ones
#   build-env.sh pack          the pack itself, resolved offline against that environment, pip check
#
# Inputs (the Dockerfile's ARG/ENV): VARIANT, PYTHON_SOURCE (uv|system), PYTHON_VERSION, TORCH_VERSION,
# TORCH_INDEX, CUDA_VERSION, CUDA_ARCH, COMPILE_FROM_SOURCE, SKIP_COMPILE, PACK_EXTRAS.
# Everything installed comes from a lock with hashes (docker/bootstrap.lock, the variant's
# requirements.lock), except torch where the lock's header says it could not be locked.
set -euo pipefail
here=/usr/local/lib/pack-build
log() { echo "build-env[$VARIANT]: $*" >&2; }

compiled_wanted() {  # COMPILE_FROM_SOURCE minus SKIP_COMPILE
  local p s keep
  for p in $COMPILE_FROM_SOURCE; do
    keep=1
    for s in $SKIP_COMPILE; do [ "$p" = "$s" ] && keep=0; done
    [ "$keep" = 1 ] && echo "$p"
  done
  return 0
}

# lock_blocks FILE MODE NAMES...: print the lock's entries (a `name==ver \` line and its hash lines)
# whose name is (MODE=only) or is not (MODE=except) one of NAMES.
lock_blocks() {
  local file=$1 mode=$2; shift 2
  awk -v mode="$mode" -v names=" $* " '
    /^[A-Za-z0-9]/ { split($1, a, "=="); n = tolower(a[1]); hit = index(names, " " n " ") > 0
                     keep = (mode == "only") ? hit : !hit }
    /^#/ { next }
    keep { print }' "$file"
}

environment() {
  apt-get update
  # build-essential: some locked packages are sdists with C code (e.g. pypcre, of gptqmodel), and the
  # compile_from_source ones need it; python3-dev gives the system Python's headers to those builds.
  local pkgs=(tini ca-certificates build-essential git)
  if [ "$PYTHON_SOURCE" = system ]; then pkgs+=(python3-dev); else pkgs+=(python3 python3-venv); fi
  apt-get install -y --no-install-recommends "${pkgs[@]}"
  rm -rf /var/lib/apt/lists/*

  # uv from PyPI, hash-checked (docker/bootstrap.lock), in its own small environment.
  python3 -m venv /opt/uv
  [ -f /etc/ssl/certs/ca-certificates.crt ] && export PIP_CERT=/etc/ssl/certs/ca-certificates.crt
  /opt/uv/bin/pip install --no-cache-dir --require-hashes -r "$here/bootstrap.lock"
  ln -sf /opt/uv/bin/uv /usr/local/bin/uv
  [ -f /etc/ssl/certs/ca-certificates.crt ] && export PIP_CERT=/etc/ssl/certs/ca-certificates.crt
  export UV_SYSTEM_CERTS=1  # a build host's CA bundle mounted over the system one is honoured (uv)

  if [ "$PYTHON_SOURCE" = system ]; then
    uv venv --python "$(command -v python3)" /opt/venv
  else
    uv python install "$PYTHON_VERSION"
    uv venv --python "$PYTHON_VERSION" /opt/venv
  fi

  install_torch
}

# torch and everything it depends on (its CUDA wheels among them): their own layer, the largest and
# the one that changes least; from the lock with hashes, or from TORCH_INDEX where the lock says so.
# torch_closure LOCK: the lock's entries for torch and its dependencies, read from the `# via` notes
# (a package is in when something already in requires it), so hash-checking sees a closed set.
torch_closure() {
  "${PYTHON:-python3}" - "$1" <<'EOF'
import re, sys
entries, via, name = {}, {}, None
for line in open(sys.argv[1]):
    if re.match(r"[A-Za-z0-9]", line):
        name = line.split("==")[0].lower()
        entries[name], via[name] = [line], set()
    elif name and line.strip().startswith("--hash"):
        entries[name].append(line)
    elif name and line.strip().startswith("#"):
        note = line.strip().lstrip("#").strip()
        note = note[len("via"):].strip() if note.startswith("via") else note
        if note and not note.startswith("-r"):
            via[name].add(note.split()[0].lower())
want, grew = {"torch"}, True
while grew:
    new = {n for n, v in via.items() if n not in want and v & want}
    want |= new
    grew = bool(new)
sys.stdout.write("".join(l for n in entries if n in want for l in entries[n]))
EOF
}
install_torch() {
  cache_mode
  local lock=$here/requirements.lock torch=$here/torch.lock
  if grep -q '^torch==' "$lock"; then
    torch_closure "$lock" > "$torch"
    uv pip install --require-hashes -r "$torch"
  else
    # The lock's header says why: this CUDA build of torch is only on TORCH_INDEX.
    log "torch is not in the lock; installing torch==$TORCH_VERSION from $TORCH_INDEX"
    uv pip install --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION"
  fi
}

# Everything else in the lock (hashes required), then the compile_from_source packages.
packages() {
  cache_mode
  local lock=$here/requirements.lock main=$here/main.lock compiled=$here/compiled.lock
  # shellcheck disable=SC2046,SC2086
  lock_blocks "$lock" except $COMPILE_FROM_SOURCE > "$main"
  uv pip install --require-hashes -r "$main"

  local want
  want=$(compiled_wanted | tr '\n' ' ')
  if [ -n "${want// }" ]; then
    # shellcheck disable=SC2086
    lock_blocks "$lock" only $want > "$compiled"
    if [[ " $want " == *" llama-cpp-python "* ]]; then
      export CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCH//./} -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined"
    fi
    log "compiling against torch $TORCH_VERSION / CUDA $CUDA_VERSION: $want"
    MAX_JOBS=${MAX_JOBS:-8} uv pip install --require-hashes --no-build-isolation -r "$compiled"
  fi
  if [ -n "$SKIP_COMPILE" ]; then
    log "NOT built (SKIP_COMPILE): $SKIP_COMPILE"
  fi
}

# UV_CACHE=0 (make images-local): no download cache, so a build needs the environment's size on disk
# once rather than twice; layers are still cached by the image store.
cache_mode() {
  export UV_SYSTEM_CERTS=1
  if [ "${UV_CACHE:-1}" = 0 ]; then export UV_NO_CACHE=1; fi
}

pack_itself() {
  export UV_SYSTEM_CERTS=1
  local extras=$PACK_EXTRAS skip
  for skip in $SKIP_COMPILE; do  # an extra whose package was skipped cannot be satisfied
    if [ "$skip" = llama-cpp-python ]; then extras=$(echo "$extras" | sed 's/\(^\|,\)llamacpp//; s/^,//'); fi
  done
  # With dependency resolution, offline: every requirement of the pack must already be met by the lock.
  uv pip install --offline --no-build-isolation "/opt/pack[$extras]"
  uv pip check
  pack --help > /dev/null
  python - <<EOF
import sys, torch, transformers
want = "${CUDA_VERSION}".rsplit(".", 1)[0]
if torch.version.cuda != want:
    sys.exit(f"torch {torch.__version__} is built for CUDA {torch.version.cuda}, this image is CUDA {want}")
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}")
EOF
  chmod 0755 /usr/local/bin/pack-entrypoint
  useradd --create-home --uid 1000 --shell /bin/bash pack
  mkdir -p /runs
  chown pack:pack /runs
}

# PACK_BUILD_ENV_LIB=1: only define the functions (tests/unit/test_docker_images.py sources them).
if [ -z "${PACK_BUILD_ENV_LIB:-}" ]; then
  case "${1:-}" in
    environment) environment ;;
    packages) packages ;;
    pack) pack_itself ;;
    *) echo "build-env.sh: unknown step '${1:-}' (environment|packages|pack)" >&2; exit 2 ;;
  esac
fi
