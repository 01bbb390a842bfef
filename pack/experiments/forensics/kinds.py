"""The forensics experiment types and the variable each one tests (None: the reference run).

Plain data with no imports, so that the CLI (`pack analyze forensics --as TYPE`) can offer the types
without loading pydantic or torch; configs.py builds the typed params on it.
"""

from __future__ import annotations

EXPERIMENTS: dict[str, str | None] = {  # experiment_type -> the variable it tests
    "reference": None,
    "batch_size": "batch_size",
    "compile": "compile",
    "quantization": "quantization",
    "attention": "attention_impl",
    "concurrent_streams": "concurrent_streams",
    "cuda_version": "cuda_version",
    "tensor_parallel": "tp_size",
    "expert_parallel": "ep_size",
}
