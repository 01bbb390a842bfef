#!/usr/bin/env bash
# llama.cpp on CUDA (issue: real engines on the GPU), on a GPU machine that cannot reach the index:
#   1. build llama-cpp-python's CUDA wheel from the trimmed sdist that `make llamacpp-cuda-src` made
#      (one architecture, flash-attention kernels off), with the machine's own nvcc, cuBLAS and cores;
#   2. Paper B's null re-run on that engine (paperB:llamacpp-null-mid, full scale: TinyLlama-1.1B's
#      shape as a Q8_0 GGUF, all layers on the GPU), clean, then with a co-resident matmul load;
#   3. the harness overhead against llama.cpp's own decode clock, on the GPU.
#
#   OUT=/tmp/out bash bench/gpu/llamacpp_cuda.sh    (repo root; carry build/llamacpp-src.tar.gz and .whl)
#
# Files in $OUT: llamacpp_build.txt (tail of the build log, wheel size, build seconds), throughput_gpu.md /
# .json (both runs' tables), clean_summary.json, loaded_summary.json, llamacpp_overhead.json, log.txt.
set -uo pipefail
: "${OUT:?set OUT to an output directory}"
mkdir -p "$OUT"
SRC=${LLAMACPP_CUDA_SRC:-build/llamacpp-src.tar.gz}
ARCH=${CUDA_ARCH:-90}
SITE=${SITE:-/tmp/site}
PY=${PY:-python3}
LOG="$OUT/log.txt"; : > "$LOG"
W=$(mktemp -d /tmp/llamacpp-cuda.XXXXXX)
say() { echo "$*" | tee -a "$LOG"; }

say "== nvcc: $(command -v nvcc) $(nvcc --version 2>/dev/null | tail -1)"
# cuBLAS: the toolkit's, else the one PyTorch's wheels brought (nvidia-cublas): llama.cpp links it.
CUBLAS_LIB=$(find / -xdev \( -name 'libcublas.so.1*' -o -name 'libcublas.so' \) 2>/dev/null | grep -v stubs | head -1)
CUBLAS_INC=$(find / -xdev -name cublas_v2.h 2>/dev/null | head -1)
say "== cuBLAS: lib=${CUBLAS_LIB:-none} include=${CUBLAS_INC:-none}"
EXTRA=()
if [ -n "$CUBLAS_LIB" ] && [ -n "$CUBLAS_INC" ]; then
  LIBDIR=$(dirname "$CUBLAS_LIB"); INCDIR=$(dirname "$CUBLAS_INC")
  LT=$(ls "$LIBDIR"/libcublasLt.so* 2>/dev/null | head -1)
  EXTRA=(-DCUDA_cublas_LIBRARY="$CUBLAS_LIB" -DCUDA_cublasLt_LIBRARY="$LT"
         "-DCMAKE_CUDA_FLAGS=-I$INCDIR" "-DCMAKE_CXX_FLAGS=-I$INCDIR" "-DCMAKE_C_FLAGS=-I$INCDIR")
  export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LIBRARY_PATH="$LIBDIR${LIBRARY_PATH:+:$LIBRARY_PATH}"
fi

tar xzf "$SRC" -C "$W" || { say "no source tarball at $SRC (make llamacpp-cuda-src)"; exit 2; }
T0=$SECONDS
( cd "$W"/llama_cpp_python-*/ && \
  CMAKE_ARGS="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DGGML_CUDA_FA=OFF -DGGML_CUDA_NCCL=OFF \
    -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF ${EXTRA[*]}" \
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) timeout 400 $PY -m pip wheel --no-deps --no-build-isolation --no-cache-dir \
    -w "$W/wheels" . ) > "$W/build.log" 2>&1
rc=$?
BUILD_S=$(( SECONDS - T0 ))
{ echo "build rc=$rc in ${BUILD_S}s (CUDA arch $ARCH, FA off, $(nproc) cores)"; ls -l "$W"/wheels 2>/dev/null; \
  echo "--- build log tail"; tail -40 "$W/build.log"; } > "$OUT/llamacpp_build.txt"
say "== build rc=$rc in ${BUILD_S}s"
[ "$rc" = 0 ] || { tail -40 "$W/build.log" | tee -a "$LOG"; exit 1; }

$PY -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$W"/wheels/*.whl .whl/diskcache-*.whl .whl/gguf-*.whl 2>&1 | tail -3
export PYTHONPATH="$SITE:.${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import llama_cpp as l; l.llama_backend_init(); print('llama-cpp-python', l.__version__, 'gpu offload:', l.llama_supports_gpu_offload()); print(l.llama_print_system_info().decode())" 2>&1 | tee -a "$LOG"

say "== probe: which configurations load and decode (each in its own process)"
[ "${PROBE:-1}" = 1 ] && timeout 200 $PY bench/gpu/llamacpp_probe.py "$OUT/llamacpp_probe.json" 2>&1 | tail -3 | tee -a "$LOG"

say "== null re-run on the GPU engine (clean, then loaded)"
BUDGET=${BUDGET_S:-570}   # the whole script stays inside one 10-minute device call
ROW=paperB:llamacpp-null-mid OUT="$OUT" PY="$PY" timeout $(( BUDGET - SECONDS - 70 )) bash bench/gpu/throughput.sh 2>&1 | tail -30 | tee -a "$LOG"

say "== harness overhead on the GPU"
[ "${OVERHEAD:-1}" = 1 ] && [ $(( BUDGET - SECONDS )) -gt 40 ] && timeout $(( BUDGET - SECONDS - 10 )) $PY bench/throughput_overhead.py --layers 22 --runs 3 --n-decode 256 --n-gpu-layers -1 --qtype Q8_0 \
  > "$OUT/llamacpp_overhead.json" 2>>"$LOG"
cat "$OUT/llamacpp_overhead.json" | tee -a "$LOG"
say "== done in ${SECONDS}s"
