"""Small helpers shared by the test layers (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds,
    with ``detail()`` (say, the log of the process waited for) so that a CI failure explains itself.

    Bounded in time by construction, so a test never hangs on a service that does not come up.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    message = f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})"
    if detail is not None:
        message += f"\n{detail()}"
    raise AssertionError(message)


def broker_problem(url: str) -> str | None:
    """Why the broker at ``url`` cannot serve the tests, or None: it must answer and confirm a publish.

    A broker in a resource alarm (low disk or memory) accepts connections but holds every publish; without
    this check each worker test would time out with no hint of the cause."""
    from kombu.connection import Connection

    blocked: list[str] = []
    options = {"confirm_publish": True, "on_blocked": blocked.append}
    connection = Connection(url, connect_timeout=5, transport_options=options)  # type: ignore[no-untyped-call]
    try:
        connection.ensure_connection(max_retries=3, interval_start=0.5)  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        # Unroutable through the default exchange: confirmed, and nothing is stored.
        channel.basic_publish(  # type: ignore[no-untyped-call]
            channel.prepare_message(b"preflight"), exchange="",  # type: ignore[no-untyped-call]
            routing_key="taskqueue-tests-preflight-nobody-listens", confirm_timeout=10,
        )
    except Exception as exc:
        if blocked:
            return f"it blocks publishing ({blocked[0]}): a resource alarm, see `rabbitmq-diagnostics alarms`"
        return f"{exc.__class__.__name__}: {exc}"
    finally:
        # Drop the socket without the closing handshake: a broker that blocks us would never answer it.
        connection.collect()  # type: ignore[no-untyped-call]
    return None


def queue_exists(connection: Any, queue: str) -> bool:
    """Whether ``queue`` exists on the broker (a passive declare; its 404 closes only a fresh channel)."""
    from amqp.exceptions import NotFound

    try:
        connection.channel().queue_declare(queue, passive=True)
    except NotFound:
        return False
    return True


def free_port(start: int | None = None, host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on: the first free one from ``start``, else one the kernel picks."""
    candidates = range(start, min(start + 100, 65536)) if start else [0]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise AssertionError(f"no free port from {start}")


def flower_api(base_url: str, path: str, auth: tuple[str, str] | None) -> Any:
    """GET a Flower REST path (``api/tasks``) under ``base_url``; None unless it answers 200 with JSON.

    Returning None (not raising) lets ``wait_until`` poll a Flower that is still starting.
    """
    try:
        response = requests.get(base_url.rstrip("/") + "/" + path.lstrip("/"), auth=auth, timeout=5)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None
