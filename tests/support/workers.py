"""``taskqueue`` workers and producers of the tests: started, and judged by the real health probes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.support.brokers import broker_problem
from tests.support.processes import VENV_BIN, Processes
from tests.support.waiting import wait_until


def client_app(broker_url: str, queue_name: str, worker_health_file: Path | None = None) -> Any:
    """A Celery app configured like the workers (same broker and queue, rpc:// results), to send and fetch."""
    from taskqueue.app import create_app
    from taskqueue.config import Settings

    files = {"worker_health_file": worker_health_file} if worker_health_file is not None else {}
    return create_app(Settings(broker_url=broker_url, queue_name=queue_name, **files))  # type: ignore[arg-type]


def health_of(env: dict[str, str]) -> Any:
    """In-process ``taskqueue health worker`` for the worker run with ``env``."""
    from taskqueue.config import load_probe_settings
    from taskqueue.health import check_worker

    return check_worker(load_probe_settings(env))


def start_worker(
    processes: Processes, env: dict[str, str], name: str = "worker", timeout: float = 60
) -> subprocess.Popen[bytes]:
    """``taskqueue worker`` in a subprocess, returned once its heartbeat says it consumes its queue."""
    Path(env["WORKER_HEALTH_FILE"]).unlink(missing_ok=True)
    process = processes.taskqueue("worker", env=env, name=name)

    def consuming() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"worker exited with {process.returncode}:\n{processes.output(process)}")
        return bool(health_of(env).healthy)

    wait_until(
        consuming,
        timeout=timeout,
        what=f"{name} consuming",
        detail=lambda: (
            f"probe: {health_of(env).reason}\n"
            f"broker: {broker_problem(env['BROKER_URL']) or 'answers and confirms a publish'}\n"
            f"{name} log (tail):\n{processes.tail(process)}"
        ),
    )
    return process


def health_producer(env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    """The real probe command, as the kubelet runs it."""
    return subprocess.run([str(VENV_BIN / "taskqueue"), "health", "producer", *flags], env=env,
                          capture_output=True, text=True, timeout=30)


def wait_ready(processes: Processes, producer: subprocess.Popen[bytes], env: dict[str, str]) -> None:
    """Wait until ``taskqueue health producer`` passes for ``producer``; on timeout, say why."""
    wait_until(
        lambda: health_producer(env).returncode == 0,
        timeout=30,
        what="the producer to be ready",
        detail=lambda: f"probe: {health_producer(env).stderr}log (tail):\n{processes.tail(producer)}",
    )
