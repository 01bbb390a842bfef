"""The reproducibility pack: manifests of paper rows, runs with provenance, verdicts against tolerances.

Nothing imported here may pull in torch, transformers, llama_cpp or vllm: the CLI's
read-only commands (list, show, validate, plan, verify) must start fast.
"""

__version__ = "0.1.0"
