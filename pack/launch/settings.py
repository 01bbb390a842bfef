"""Launch settings: pack/launch/providers.yaml (boot overhead, idle limit, grace per launcher)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..yamlio import load_with_lines

PROVIDERS_FILE = Path(__file__).with_name("providers.yaml")


@lru_cache(maxsize=1)
def providers() -> dict:
    data, _ = load_with_lines(PROVIDERS_FILE, expect=dict)
    return data


def provider(name: str) -> dict:
    return providers().get(name, {})
