"""Throughput and perplexity, measured so that a clean number can be told from a contaminated one.

    ab.py             A/B statistics over arms: resolution floor, variance ratio, bootstrap CI of the
                      delta, Brown-Forsythe test, the statistical contamination reasons  (pure)
    contamination.py  NVML before/during/after: other GPU processes, throttle reasons, idle load; CPU
    roofline.py       bytes read per decode token / device bandwidth, and the fraction reached
    outputs.py        the summary's roofline and the seed's CSV/JSON outputs
    params.py         the params blocks the arm experiments share (typed, for `pack validate`)
    harness.py        what the pack's two backends share (the loop itself: pack.experiments.arms)
    llamacpp.py       experiment `throughput_llamacpp` (llama-cpp-python on a GGUF)
    hf.py             experiment `throughput_hf` (transformers; the GPU machines' path)
    paperb.py         Paper B's engine output lines and ablation arms (data)

Nothing here imports torch or llama_cpp at module level.
"""
