"""Shared plumbing of the benchmarks: a unique queue, a ``taskqueue worker`` subprocess, cleanup by PID."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from kombu.connection import Connection

from taskqueue.children import stop_process

#: The broker of the benchmark: BROKER_URL if set, else the private node :func:`broker` starts.
BROKER_URL = os.environ.get("BROKER_URL", "")
VENV_BIN = Path(sys.executable).parent


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """The benchmark's broker URL: ``BROKER_URL`` when set, else a private RabbitMQ node (own ports, data in
    a temporary directory) started here and stopped by PID on exit. Nothing is assumed to listen on 5672."""
    global BROKER_URL
    if BROKER_URL:
        yield BROKER_URL
        return
    from taskqueue.private_broker import find_rabbitmq_server, start_private_broker

    server = find_rabbitmq_server()
    if server is None:
        raise SystemExit("BROKER_URL is unset and rabbitmq-server is not installed")
    node = start_private_broker(server, dict(os.environ))
    BROKER_URL = node.url
    try:
        yield BROKER_URL
    finally:
        BROKER_URL = ""
        node.remove()


def wait_for(probe: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


@contextlib.contextmanager
def bench_queue() -> Iterator[str]:
    """A fresh queue name; the queue and its exchange are deleted afterwards."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        from taskqueue.app import remove_task_queue

        with Connection(BROKER_URL) as connection:  # type: ignore[no-untyped-call]
            remove_task_queue(connection, name)


def worker_env(queue: str, workdir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BROKER_URL=BROKER_URL,
        QUEUE_NAME=queue,
        HEALTH_FILE=str(workdir / "heartbeat"),
        PRODUCER_HEALTH_FILE=str(workdir / "producer.heartbeat"),
        HEALTH_INTERVAL="0.2",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


@contextlib.contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``taskqueue worker``, stopped (SIGTERM, then SIGKILL of its group) by PID on exit."""
    with taskqueue(["worker"], env, log) as process:
        yield process


@contextlib.contextmanager
def taskqueue(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``taskqueue ARGS``, stopped (SIGTERM, then SIGKILL of its group) by PID on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "taskqueue"), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process(process)


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="taskqueue-bench-")


def client(queue: str):  # type: ignore[no-untyped-def]
    """A Celery app like the worker's, for publishing."""
    from taskqueue.app import create_app
    from taskqueue.config import Settings

    return create_app(Settings(broker_url=BROKER_URL, queue_name=queue))  # type: ignore[arg-type]
