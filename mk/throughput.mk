# llama.cpp backend (pack[llamacpp]) and the throughput tests.
#
#   make llamacpp            build llama-cpp-python from source for this CPU family (no native flags)
#   make llamacpp LLAMACPP_CUDA=1 CUDA_ARCH=89   a CUDA build (one architecture keeps it to ~30 min)
#   make test-throughput     the throughput/perplexity tests, with the llama.cpp build first
#
# Why not `pip install llama-cpp-python`: there is no binary wheel for this platform, and a source
# build with GGML_NATIVE=ON compiles for the build machine's reported ISA. Some CPUs (and VMs) report
# AMX but fault on it, so llama.cpp dies with "Illegal instruction" at the first matmul. The CPU
# flags below target AVX2/FMA/F16C machines (x86-64-v3) and switch AMX off explicitly.
# The wheel cache is keyed by the flags, so a build with other flags is never reused by mistake.
LLAMACPP_VERSION ?= 0.3.36
LLAMACPP_CUDA ?= 0
CUDA_ARCH ?= 89
LLAMACPP_CMAKE_CPU := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_CUDA=OFF -DLLAMA_CURL=OFF
LLAMACPP_CMAKE_CUDA := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_CUDA=ON \
	-DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCH) -DLLAMA_CURL=OFF
LLAMACPP_CMAKE_ARGS ?= $(if $(filter 1,$(LLAMACPP_CUDA)),$(LLAMACPP_CMAKE_CUDA),$(LLAMACPP_CMAKE_CPU))
LLAMACPP_STAMP := $(VENV)/.llamacpp-$(LLAMACPP_VERSION)-cuda$(LLAMACPP_CUDA)

.PHONY: llamacpp test-throughput bench-throughput

llamacpp: $(LLAMACPP_STAMP)

# The source build takes minutes (tens of minutes on a busy 2-core machine): build the wheel once per
# version and flag set into a cache folder named by their hash, then install from there.
LLAMACPP_FLAGS_HASH := $(shell printf '%s' "$(LLAMACPP_VERSION) $(LLAMACPP_CMAKE_ARGS)" | sha256sum | cut -c1-12)
LLAMACPP_WHEELS ?= $(HOME)/.cache/pack/wheels/llama-cpp-python-$(LLAMACPP_FLAGS_HASH)

$(LLAMACPP_STAMP): | $(VENV)/.installed
	@if ! ls $(LLAMACPP_WHEELS)/llama_cpp_python-$(LLAMACPP_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMACPP_VERSION) from source (CMAKE_ARGS=$(LLAMACPP_CMAKE_ARGS))"; \
	  mkdir -p $(LLAMACPP_WHEELS) && \
	  CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" FORCE_CMAKE=1 $(BIN)/pip wheel --no-deps --no-cache-dir \
	    --no-binary llama-cpp-python -w $(LLAMACPP_WHEELS) "llama-cpp-python==$(LLAMACPP_VERSION)"; \
	fi
	$(BIN)/pip install -q --find-links $(LLAMACPP_WHEELS) --only-binary llama-cpp-python \
		"llama-cpp-python==$(LLAMACPP_VERSION)" "gguf>=0.10"
	@# Load the CPU backend and print what it was built for: an ISA mismatch dies here, not in a test.
	$(BIN)/python -c "import llama_cpp as l; l.llama_backend_init(); print('llama-cpp-python', l.__version__, '|', l.llama_print_system_info().decode())"
	@touch $@

test-throughput: $(LLAMACPP_STAMP)
	$(BIN)/python -m pytest -q -m throughput

bench-throughput: $(LLAMACPP_STAMP)
	$(BIN)/python bench/throughput_overhead.py

# A CUDA wheel for a GPU machine that cannot reach the package index (the device machine here):
#   make llamacpp-cuda-src      the PyPI sdist, trimmed to the CPU and CUDA backends (~10 MB), so it can
#                               travel with the working tree; bench/gpu/llamacpp_cuda.sh builds it there.
# Flash-attention kernels are off (GGML_CUDA_FA=OFF) and one architecture is built: ~120 template
# instances otherwise make it an hours-long build. NCCL is off (single-GPU rows only).
LLAMACPP_CUDA_SRC ?= build/llamacpp-src.tar.gz
LLAMACPP_TRIM := .git vendor/llama.cpp/.git vendor/llama.cpp/models vendor/llama.cpp/docs vendor/llama.cpp/benches \
	vendor/llama.cpp/media $(foreach b,cann et hexagon hip metal musa opencl openvino sycl virtgpu vulkan webgpu zdnn zendnn,vendor/llama.cpp/ggml/src/ggml-$(b))

.PHONY: llamacpp-cuda-src
llamacpp-cuda-src: $(LLAMACPP_CUDA_SRC)

$(LLAMACPP_CUDA_SRC): | $(BIN)/python
	@rm -rf build/llamacpp-sdist && mkdir -p build/llamacpp-sdist
	$(BIN)/pip download --no-deps --no-binary :all: -d build/llamacpp-sdist "llama-cpp-python==$(LLAMACPP_VERSION)"
	cd build/llamacpp-sdist && tar xzf llama_cpp_python-$(LLAMACPP_VERSION).tar.gz && \
	  cd llama_cpp_python-$(LLAMACPP_VERSION) && rm -rf $(LLAMACPP_TRIM)
	tar czf $@.tmp -C build/llamacpp-sdist llama_cpp_python-$(LLAMACPP_VERSION) && mv $@.tmp $@
	@rm -rf build/llamacpp-sdist
	@ls -l $@
