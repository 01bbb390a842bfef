"""Throughput and perplexity, measured so that a clean number can be told from a contaminated one.

    ab.py             A/B statistics over interleaved arms, variance ratio, floor  (pure)
    contamination.py  NVML before/during/after: other GPU processes, throttle reasons, idle load
    roofline.py       bytes read per decode token / device bandwidth, and the fraction reached
    harness.py        arms loop under the GPU watch, summary, the seed's CSV/JSON outputs
    llamacpp.py       experiment `throughput_llamacpp` (llama-cpp-python on a GGUF)
    hf.py             experiment `throughput_hf` (transformers; the GPU machines' path)
    paperb.py         Paper B's engine output lines and the `command` rows' A/B hook

Nothing here imports torch or llama_cpp at module level.
"""
