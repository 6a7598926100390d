"""What the benchmarks share beyond tests/support (processes, waiting, ports and brokers, shared with the
tests): the repository root on the import path, the run's broker, a unique queue, a ``taskqueue worker``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# The scripts run as `python benchmarks/<name>.py`: tests.support must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.brokers import exit_missing, private_node, remove_queue
from tests.support.processes import VENV_BIN, running
from tests.support.runtime import runtime_environment
from tests.support.waiting import wait_until
from tests.support.workers import client_app

__all__ = ["VENV_BIN", "wait_until"]

#: The broker of the benchmark: BROKER_URL if set, else the private node :func:`broker` starts.
BROKER_URL = os.environ.get("BROKER_URL", "")


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """The benchmark's broker URL: ``BROKER_URL`` when set, else a private RabbitMQ node (own ports, data in
    a temporary directory) started here and stopped by PID on exit. Nothing is assumed to listen on 5672."""
    global BROKER_URL
    if BROKER_URL:
        yield BROKER_URL
        return
    with private_node("taskqueue-bench", missing=exit_missing) as node:
        BROKER_URL = node.url
        try:
            yield BROKER_URL
        finally:
            BROKER_URL = ""


@contextlib.contextmanager
def bench_queue() -> Iterator[str]:
    """A fresh queue name; the queue and its exchange are deleted afterwards."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        remove_queue(BROKER_URL, name)


def worker_env(queue: str, workdir: Path, **extra: str) -> dict[str, str]:
    """The tests' runtime environment (nothing of the runtime's configuration from the shell), a quick
    heartbeat, and the per-task log lines (``received``, ``succeeded``) the benchmarks time tasks by."""
    return {**runtime_environment(BROKER_URL, queue, workdir), "HEALTH_INTERVAL": "0.2",
            "WORKER_LOG_TASKS": "true", **extra}


@contextlib.contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``taskqueue worker``, stopped (SIGTERM, then SIGKILL of its group) by PID on exit."""
    with taskqueue(["worker"], env, log) as process:
        yield process


def taskqueue(args: list[str], env: dict[str, str], log: Path) -> contextlib.AbstractContextManager[
        subprocess.Popen[bytes]]:
    """``taskqueue ARGS``, stopped (SIGTERM, then SIGKILL of its group) by PID on exit."""
    return running([str(VENV_BIN / "taskqueue"), *args], env, log)


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="taskqueue-bench-")


def client(queue: str):  # type: ignore[no-untyped-def]
    """A Celery app like the worker's, for publishing."""
    return client_app(BROKER_URL, queue)
