"""The workers' task events (Celery's event stream on the broker, what Flower reads): proof that a task ran
which does not depend on what the worker logs."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu.messaging import Consumer


class TaskEvents:
    """Receives the ``task-received``, ``task-started``, ``task-succeeded`` and ``worker-heartbeat`` events of
    every worker on the broker from the moment it is created (its event queue is bound at once). Use as a
    context manager."""

    def __init__(self, broker_url: str) -> None:
        self.app = Celery("task-events", broker=broker_url, set_as_current=False)
        self.connection = self.app.connection_for_read()
        self.received: list[dict[str, Any]] = []
        self.started: list[dict[str, Any]] = []
        self.succeeded: list[dict[str, Any]] = []
        #: ``worker-heartbeat`` events: what tells Flower a worker is online.
        self.heartbeats: list[dict[str, Any]] = []
        receiver = self.app.events.Receiver(
            self.connection,
            handlers={"task-received": self.received.append, "task-started": self.started.append,
                      "task-succeeded": self.succeeded.append,
                      "worker-heartbeat": self.heartbeats.append},
        )
        channel = self.connection.default_channel
        self._consumers = receiver.get_consumers(functools.partial(Consumer, channel), channel)
        for consumer in self._consumers:
            consumer.consume()

    def __enter__(self) -> TaskEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        for consumer in self._consumers:
            consumer.cancel()
        self.connection.release()

    def of(self, hostname_prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(received, succeeded) events of the workers whose node name starts with ``hostname_prefix``."""
        return _of(self.received, hostname_prefix), _of(self.succeeded, hostname_prefix)

    def started_of(self, hostname_prefix: str) -> list[dict[str, Any]]:
        """task-started events of the workers whose node name starts with ``hostname_prefix``."""
        return _of(self.started, hostname_prefix)

    def wait(self, done: Callable[[], bool], *, timeout: float, what: str,
             detail: Callable[[], str] | None = None) -> None:
        """Receive events until ``done()``; fail naming ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                extra = f"\n{detail()}" if detail else ""
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what} ({len(self.received)} received, "
                    f"{len(self.succeeded)} succeeded events){extra}"
                )
            with contextlib.suppress(TimeoutError):  # socket.timeout: no event within the half second
                self.connection.drain_events(timeout=0.5)


def _of(events: list[dict[str, Any]], hostname_prefix: str) -> list[dict[str, Any]]:
    return [e for e in events if str(e.get("hostname", "")).startswith(hostname_prefix)]
