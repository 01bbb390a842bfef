"""Model sources: a hub id or local path (transformers), and `synthetic:<name>` (random init from a
built-in architecture config with a fixed seed). Heavy imports stay inside functions."""
