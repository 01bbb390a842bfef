# Images and reproductions on any hardware (issue 5). Included by the main Makefile.
#
#   make images [PUSH=1] [PACK_IMAGE_PREFIX=ghcr.io/you/ecmoe] [BAKE_TARGETS="cu118 cu121"]
#   make reproduce-<paper> HW=<hardware> [SCALE=smoke|full] [BUDGET_USD=5] [PARALLEL=N] [DRY=1]
#
# reproduce: `pack launch plan` (per-row time and cost, deadlines, SkyPilot's chosen resources, budget
# gate); DRY=1 stops there. HW=local runs the paper's rows here at SCALE (default smoke); any other HW
# launches one SkyPilot cluster per row (default SCALE full, PARALLEL at a time), fetches, verifies,
# tears down; then verify and report.

PACK ?= $(BIN)/pack
PACK_DEPS := $(if $(filter $(BIN)/pack,$(PACK)),setup)
IMAGES_METADATA ?= build/images-metadata.json
BAKE_TARGETS ?=
REPORTS ?= reports
LAUNCH_POLL ?= 30
PARALLEL ?= 1
REPRO_SCALE = $(if $(filter command line environment override,$(origin SCALE)),$(SCALE),$(if $(filter local,$(HW)),$(SCALE),full))

.PHONY: images images-check

images-check: $(PACK_DEPS)
	$(PACK) launch images --check

# One buildx bake for the four images; --metadata-file records each image's digest, which
# `pack launch` uses to pin remote launches to exactly what was built.
images: images-check
	@mkdir -p $(dir $(IMAGES_METADATA))
	PREFIX="$${PACK_IMAGE_PREFIX:-ecmoe}" GIT_SHA="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
	  docker buildx bake --metadata-file $(IMAGES_METADATA) $(if $(PUSH),--push,--load) $(BAKE_TARGETS)
	@echo "image digests: $(IMAGES_METADATA)"

reproduce-%: $(PACK_DEPS)
	@set -e; \
	$(PACK) launch plan $* --hw $(HW) --scale $(REPRO_SCALE) $(if $(BUDGET_USD),--budget $(BUDGET_USD)); \
	if [ -n "$(DRY)" ]; then echo "DRY=1: stopped after the plan; nothing was run"; exit 0; fi; \
	status=0; \
	if [ "$(HW)" = local ]; then \
	  $(PACK) run $* --scale $(REPRO_SCALE) || status=$$?; \
	else \
	  $(PACK) launch $* --hw $(HW) --scale $(REPRO_SCALE) --poll $(LAUNCH_POLL) --parallel $(PARALLEL) $(if $(BUDGET_USD),--budget $(BUDGET_USD)) || status=$$?; \
	fi; \
	$(PACK) verify $* --brief || status=$$?; \
	$(PACK) report $* --out $(REPORTS)/$* >/dev/null || true; \
	echo "report: $(REPORTS)/$*/report.html"; \
	exit $$status
