"""The status documents tests read over HTTP, parsed with their contract models (never by key)."""

from __future__ import annotations

import httpx

from contract.api import GeneratorStatus
from contract.merger_status import MergerStatus


def merger_status(base_url: str, timeout: float = 5) -> MergerStatus:
    """GET <merger>/merger/status."""
    return MergerStatus.model_validate_json(httpx.get(f"{base_url}/merger/status", timeout=timeout).content)


def generator_status(base_url: str, timeout: float = 5) -> GeneratorStatus:
    """GET <generator or gateway>/generator/status."""
    return GeneratorStatus.model_validate_json(httpx.get(f"{base_url}/generator/status", timeout=timeout).content)
