"""Helpers to drive the `tokens` toy model (tests/toys.py) from a test, over its own REST API."""

from __future__ import annotations

import time

import httpx

STATE_TIMEOUT_S = 30.0


def open_gate(client: httpx.Client, key: str, prefix: str = "") -> None:
    response = client.post(f"{prefix}/v1/models/tokens-gate:predict", json={"key": key})
    assert response.status_code == 200, response.text


def wait_for_state(client: httpx.Client, key: str, wanted: set[str], prefix: str = "") -> str:
    """Poll `tokens-state` until the stream of `key` is in one of `wanted` (bounded)."""
    deadline = time.monotonic() + STATE_TIMEOUT_S
    while True:
        response = client.post(f"{prefix}/v1/models/tokens-state:predict", json={"key": key})
        state = response.json()["state"]
        if state in wanted or time.monotonic() > deadline:
            return state
        time.sleep(0.02)
