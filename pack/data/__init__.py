"""Built-in data: deterministic documents and prompts, so nothing is downloaded."""
