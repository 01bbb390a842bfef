// GENERATED from manifests/images.yaml by `pack launch images --write`; do not edit.
// `make images` runs `docker buildx bake --metadata-file build/images-metadata.json`, so the digest
// of every image lands in that file (pack launch pins images to it).

variable "PREFIX" {
  default = "ecmoe"
}

variable "GIT_SHA" {
  default = "unknown"
}

variable "PACK_VERSION" {
  default = "0.1.0"
}

variable "SOURCE_URL" {
  default = "unknown"
}

group "default" {
  targets = ["cu118", "cu121", "cu128", "l40s"]
}

target "_common" {
  context   = "."
  platforms = ["linux/amd64"]
  args = {
    GIT_SHA      = "${GIT_SHA}"
    PACK_VERSION = "${PACK_VERSION}"
    SOURCE_URL   = "${SOURCE_URL}"
  }
  labels = {
    "org.opencontainers.image.revision" = "${GIT_SHA}"
  }
}

target "cu118" {
  inherits   = ["_common"]
  dockerfile = "docker/cu118/Dockerfile"
  tags       = ["${PREFIX}:cu118"]
  args = {
    VARIANT        = "cu118"
    IMAGE_NAME     = "${PREFIX}:cu118"
    BASE_IMAGE     = "nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04"
    CUDA_VERSION   = "11.8.0"
    PYTHON_VERSION = "3.11"
    TORCH_VERSION  = "2.5.1"
    TORCH_INDEX    = "https://download.pytorch.org/whl/cu118"
    CUDA_ARCH      = "8.0;8.6;8.9;9.0"
  }
}

target "cu121" {
  inherits   = ["_common"]
  dockerfile = "docker/cu121/Dockerfile"
  tags       = ["${PREFIX}:cu121"]
  args = {
    VARIANT        = "cu121"
    IMAGE_NAME     = "${PREFIX}:cu121"
    BASE_IMAGE     = "nvidia/cuda:12.1.1-cudnn8-devel-ubuntu22.04"
    CUDA_VERSION   = "12.1.1"
    PYTHON_VERSION = "3.11"
    TORCH_VERSION  = "2.5.1"
    TORCH_INDEX    = "https://download.pytorch.org/whl/cu121"
    CUDA_ARCH      = "8.0;8.6;8.9;9.0"
  }
}

target "cu128" {
  inherits   = ["_common"]
  dockerfile = "docker/cu128/Dockerfile"
  tags       = ["${PREFIX}:cu128"]
  args = {
    VARIANT        = "cu128"
    IMAGE_NAME     = "${PREFIX}:cu128"
    BASE_IMAGE     = "nvidia/cuda:12.8.1-cudnn-devel-ubuntu22.04"
    CUDA_VERSION   = "12.8.1"
    PYTHON_VERSION = "3.11"
    TORCH_VERSION  = "2.10.0"
    TORCH_INDEX    = "https://download.pytorch.org/whl/cu128"
    CUDA_ARCH      = "8.0;8.6;8.9;9.0"
  }
}

target "l40s" {
  inherits   = ["_common"]
  dockerfile = "docker/l40s/Dockerfile"
  tags       = ["${PREFIX}:l40s"]
  args = {
    VARIANT        = "l40s"
    IMAGE_NAME     = "${PREFIX}:l40s"
    BASE_IMAGE     = "nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04"
    CUDA_VERSION   = "12.4.1"
    PYTHON_VERSION = "3.11"
    TORCH_VERSION  = "2.5.1"
    TORCH_INDEX    = "https://download.pytorch.org/whl/cu124"
    CUDA_ARCH      = "8.9"
  }
}
