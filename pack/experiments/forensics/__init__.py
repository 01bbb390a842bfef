"""Floating-point forensics (seed 001): can an inference-setup change be detected from hidden states,
attention keys and log-probabilities, and how does that compare with the deviation between GPU kinds?

    prompts.py     chat template + document cut to exactly N tokens (same length for batch neighbours)
    extraction.py  greedy decoding with hooks; conventions for layers, positions and keys
    signals.py     safetensors storage, digests, first-divergence search between repetitions
    kinds.py       the experiment types and the variable each tests (plain data: the CLI offers them)
    configs.py     parameters, configurations (exp0..exp8) and what can run where
    runner.py      model cache and the execution of one configuration (batch, compile, streams, ...)
    streams.py     exp5: a concurrent matmul workload on a second CUDA stream, overlap from a profiler trace
    distributed.py exp7/exp8: tensor / expert parallel decoding under torchrun
    uniform.py     the seed's uniform JSON (compact + safetensors sidecar, expanded seed-json), merging
    analysis.py    reproducibility, cross-hardware baseline, detectability, SNR classification
    report.py      terminal / Markdown tables and plots
    summary.py     an experiment's uniform JSON, sidecar and verdict metrics from its repetitions
    experiment.py  the spine's entry points: run_rep, summarize
"""
