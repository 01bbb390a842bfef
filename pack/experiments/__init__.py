"""Experiment families. Each module: run_rep(params, ctx) -> RepResult, optional summarize()."""
