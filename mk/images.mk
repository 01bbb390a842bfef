# The image matrix built on this kind of machine (issue 12). Included by the main Makefile.
#
#   make lock [LOCK_VARIANTS="cu128 l40s"]   docker/<variant>/requirements.lock from manifests/images.yaml
#   make base-local                          Debian base image (debootstrap + podman import), cached per day
#   make images-local [LOCAL_VARIANTS=cu128] build with podman on that base, then smoke-run a row inside
#
# `make images` (mk/launch.mk) is the users' build: docker buildx bake on the nvidia/cuda bases.
# images-local builds only what is reachable here (PyPI + Debian); docs/images.md says what is
# skipped and why (manifests/images.yaml `local:` per variant).

CONTAINER ?= podman
PODMAN_RUN := $(CONTAINER) --runtime runc run --ulimit nofile=1024:1024 --ulimit nproc=1024:1024
IMAGE_CACHE ?= $(HOME)/.cache/pack/images
BASE_SUITE ?= bookworm
BASE_MIRROR ?= http://deb.debian.org/debian
# The base is keyed by suite and UTC date: one debootstrap a day, reused by every build that day.
BASE_DATE ?= $(shell date -u +%Y%m%d)
BASE_TAR = $(IMAGE_CACHE)/debian-$(BASE_SUITE)-minbase-$(BASE_DATE).tar
LOCAL_BASE ?= localhost/pack-base:$(BASE_SUITE)-$(BASE_DATE)
HOST_CA ?= $(shell $(PY) -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)
LOCK_VARIANTS ?=
LOCAL_VARIANTS ?=
LOCAL_METADATA ?= build/images-local.json

.PHONY: lock base-local images-local

# uv (the version images.yaml pins, from PyPI) resolves the locks, as it installs them in the images.
lock: setup
	$(BIN)/pip install -q "uv==$$($(BIN)/python -c 'from pack import catalog; print(catalog.images().uv)')"
	$(BIN)/pack launch images --lock $(LOCK_VARIANTS)

$(BASE_TAR):
	@mkdir -p $(IMAGE_CACHE) build
	rm -rf build/base-root && mkdir -p build/base-root
	nice -n 10 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
	  $(BASE_SUITE) build/base-root $(BASE_MIRROR)
	rm -rf build/base-root/var/cache/apt/archives/*.deb build/base-root/var/lib/apt/lists/*
	tar -C build/base-root -cf $@.tmp . && mv $@.tmp $@
	rm -rf build/base-root

base-local: $(BASE_TAR)
	@if $(CONTAINER) image exists $(LOCAL_BASE); then echo "base image $(LOCAL_BASE) is here"; else \
	  $(CONTAINER) import --change 'CMD ["/bin/bash"]' $(BASE_TAR) $(LOCAL_BASE); fi

# Build what is buildable here (images.yaml `local:`), time it, run each image's smoke rows inside it
# and verify them from the host; figures in build/images-local/<variant>.json (docs/images.md quotes them).
images-local: setup base-local
	$(BIN)/pack launch images --check
	PACK=$(BIN)/pack PY=$(BIN)/python HOST_CA=$(HOST_CA) docker/build-local.sh $(LOCAL_BASE) $(LOCAL_VARIANTS)
