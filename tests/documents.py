"""The documents tests read over HTTP, parsed with their contract models (never by key)."""

from __future__ import annotations

import httpx

from contract.api import GeneratorStatus, Run
from contract.devices import DevicesResponse
from contract.merger_status import MergerStatus


def merger_status(base_url: str, timeout: float = 5) -> MergerStatus:
    """GET <merger>/merger/status."""
    return MergerStatus.model_validate_json(httpx.get(f"{base_url}/merger/status", timeout=timeout).content)


def generator_status(base_url: str, timeout: float = 5) -> GeneratorStatus:
    """GET <generator or gateway>/generator/status."""
    return GeneratorStatus.model_validate_json(httpx.get(f"{base_url}/generator/status", timeout=timeout).content)


def devices(base_url: str, device_id: str | None = None, timeout: float = 5) -> DevicesResponse:
    """GET <merger or gateway>/devices (or /devices/<device_id>); raises unless it answers 200."""
    url = f"{base_url}/devices" if device_id is None else f"{base_url}/devices/{device_id}"
    resp = httpx.get(url, timeout=timeout)
    resp.raise_for_status()
    return DevicesResponse.model_validate_json(resp.content)


def run_of(resp: httpx.Response) -> Run:
    """The run a generator command answered with (POST /generator/start, PUT /generator/rate)."""
    return Run.model_validate_json(resp.content)


def status_of(resp: httpx.Response) -> GeneratorStatus:
    """The generator's status a command answered with (POST /generator/stop)."""
    return GeneratorStatus.model_validate_json(resp.content)
