"""Flower's REST API, as the tests read it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

import requests


@dataclass
class RunningFlower:
    """A Flower a test started (on its own, or the demo's): the process, its base URL, its credentials."""

    process: subprocess.Popen[bytes]
    url: str
    auth: tuple[str, str]


def flower_api(base_url: str, path: str, auth: tuple[str, str] | None) -> Any:
    """GET a Flower REST path (``api/tasks``) under ``base_url``; None unless it answers 200 with JSON.

    Returning None (not raising) lets ``wait_until`` poll a Flower that is still starting.
    """
    try:
        response = requests.get(base_url.rstrip("/") + "/" + path.lstrip("/"), auth=auth, timeout=5)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None
