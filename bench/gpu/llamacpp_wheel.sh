#!/usr/bin/env bash
# llama-cpp-python's CUDA wheel on a GPU machine that cannot reach the index: build it once from the
# trimmed sdist that `make llamacpp-cuda-src` made (one architecture, flash-attention kernels off, the
# machine's own nvcc, cuBLAS and cores), keep it in an ignored folder keyed by the source's sha256 and
# the architecture (build/llamacpp-cuda-wheel/<key>/: a second call on a still-warm machine reuses it),
# and install it with diskcache and gguf from .whl/ into $SITE (put $SITE first on PYTHONPATH).
#
#   OUT=/tmp/out bash bench/gpu/llamacpp_wheel.sh          (repo root; carry build/llamacpp-src.tar.gz, .whl)
#   OUT=/tmp/out bash bench/gpu/llamacpp_wheel.sh --cpu    dry run: no build, checks the local llama_cpp
#
# Writes $OUT/llamacpp_build.txt (reused or built, seconds, wheel size, log tail, system info).
# Exit 0 when `import llama_cpp` works with $SITE on the path afterwards, else non-zero.
set -uo pipefail
: "${OUT:?set OUT to an output directory}"
mkdir -p "$OUT"
SRC=${LLAMACPP_CUDA_SRC:-build/llamacpp-src.tar.gz}
ARCH=${CUDA_ARCH:-90}
SITE=${SITE:-/tmp/site}
PY=${PY:-python3}
REPORT="$OUT/llamacpp_build.txt"
if [ "${1:-}" = "--cpu" ]; then
  { echo "dry run (--cpu): no CUDA build; the local llama_cpp:"; \
    $PY -c "import llama_cpp as l; print('llama-cpp-python', l.__version__, l.__file__)" 2>&1; } > "$REPORT"
  cat "$REPORT"; $PY -c "import llama_cpp" 2>/dev/null; exit $?
fi
[ -f "$SRC" ] || { echo "no source tarball at $SRC (make llamacpp-cuda-src, then carry it)" | tee "$REPORT"; exit 2; }
KEY="$(sha256sum "$SRC" | cut -c1-12)-sm$ARCH"
WHEEL_DIR=${WHEEL_DIR:-build/llamacpp-cuda-wheel}/$KEY
T0=$SECONDS
if ls "$WHEEL_DIR"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "reused the wheel built by an earlier call on this machine: $(ls "$WHEEL_DIR")" > "$REPORT"
else
  # cuBLAS: the toolkit's, else the one PyTorch's wheels brought (nvidia-cublas): llama.cpp links it.
  CUBLAS_LIB=$(find / -xdev \( -name 'libcublas.so.1*' -o -name 'libcublas.so' \) 2>/dev/null | grep -v stubs | head -1)
  CUBLAS_INC=$(find / -xdev -name cublas_v2.h 2>/dev/null | head -1)
  EXTRA=()
  if [ -n "$CUBLAS_LIB" ] && [ -n "$CUBLAS_INC" ]; then
    LIBDIR=$(dirname "$CUBLAS_LIB"); INCDIR=$(dirname "$CUBLAS_INC")
    LT=$(ls "$LIBDIR"/libcublasLt.so* 2>/dev/null | head -1)
    EXTRA=(-DCUDA_cublas_LIBRARY="$CUBLAS_LIB" -DCUDA_cublasLt_LIBRARY="$LT"
           "-DCMAKE_CUDA_FLAGS=-I$INCDIR" "-DCMAKE_CXX_FLAGS=-I$INCDIR" "-DCMAKE_C_FLAGS=-I$INCDIR")
    export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LIBRARY_PATH="$LIBDIR${LIBRARY_PATH:+:$LIBRARY_PATH}"
  fi
  W=$(mktemp -d /tmp/llamacpp-cuda.XXXXXX)
  tar xzf "$SRC" -C "$W" || { echo "cannot unpack $SRC" | tee "$REPORT"; exit 2; }
  ( cd "$W"/llama_cpp_python-*/ && \
    CMAKE_ARGS="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DGGML_CUDA_FA=OFF -DGGML_CUDA_NCCL=OFF \
      -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF ${EXTRA[*]}" \
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) timeout "${BUILD_TIMEOUT_S:-400}" $PY -m pip wheel --no-deps \
      --no-build-isolation --no-cache-dir -w "$W/wheels" . ) > "$W/build.log" 2>&1
  rc=$?
  { echo "nvcc: $(command -v nvcc) $(nvcc --version 2>/dev/null | tail -1)"; \
    echo "cuBLAS: lib=${CUBLAS_LIB:-none} include=${CUBLAS_INC:-none}"; \
    echo "build rc=$rc in $(( SECONDS - T0 ))s (CUDA arch $ARCH, FA off, $(nproc) cores)"; ls -l "$W"/wheels 2>/dev/null; \
    echo "--- build log tail"; tail -40 "$W/build.log"; } > "$REPORT"
  [ "$rc" = 0 ] || { cat "$REPORT"; rm -rf "$W"; exit 1; }
  mkdir -p "$WHEEL_DIR" && mv "$W"/wheels/*.whl "$WHEEL_DIR"/ && rm -rf "$W"
  # The library folder the build linked cuBLAS from, for the processes that load llama.cpp (only those:
  # a torch process keeps its own wheels' cuBLAS; see docs/paperB.md on the two in one process).
  echo "${LIBDIR:-}" > "$WHEEL_DIR/cublas_libdir"
fi
LIBDIR=$(cat "$WHEEL_DIR/cublas_libdir" 2>/dev/null)
[ -n "$LIBDIR" ] && export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "cuBLAS library folder for llama.cpp processes: ${LIBDIR:-none, the loader default}" >> "$REPORT"
$PY -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$WHEEL_DIR"/*.whl \
  .whl/diskcache-*.whl .whl/gguf-*.whl >> "$REPORT" 2>&1
PYTHONPATH="$SITE:.${PYTHONPATH:+:$PYTHONPATH}" $PY -c "import llama_cpp as l; l.llama_backend_init(); \
print('llama-cpp-python', l.__version__, 'gpu offload:', l.llama_supports_gpu_offload()); \
print(l.llama_print_system_info().decode())" >> "$REPORT" 2>&1
rc=$?
echo "wheel ready in $(( SECONDS - T0 ))s (rc $rc)" >> "$REPORT"
tail -4 "$REPORT"
exit $rc
