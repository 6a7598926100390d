"""Fixtures shared by every test layer: the broker, isolated queues, and processes stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kombu.connection import Connection

from taskqueue.children import stop_process
from taskqueue.config import mask_url
from taskqueue.private_broker import PrivateBroker, find_rabbitmq_server
from tests.helpers import broker_problem, queue_exists, wait_until

VENV_BIN = Path(sys.executable).parent

#: Variables of the runtime's configuration that must not leak from the developer's shell into a test.
RUNTIME_VARIABLES = (
    "BROKER_URL", "RABBITMQ_SERVICE_SERVICE_HOST", "RABBITMQ_SERVICE_SERVICE_PORT", "RABBITMQ_USERNAME",
    "RABBITMQ_PASSWORD", "RABBITMQ_VHOST", "RESULT_BACKEND", "QUEUE_NAME", "WORKER_CONCURRENCY",
    "WORKER_PREFETCH_MULTIPLIER", "TASK_TIME_LIMIT", "TASK_SOFT_TIME_LIMIT", "LOG_LEVEL",
    "PRODUCER_INTERVAL", "HEALTH_FILE", "HEALTH_INTERVAL", "HEALTH_MAX_AGE", "FLOWER_PORT",
    "FLOWER_ADDRESS", "FLOWER_BASIC_AUTH", "FLOWER_URL_PREFIX", "FLOWER_PERSISTENT", "FLOWER_DB",
    "FLOWER_MAX_TASKS", "FLOWER_MAX_WORKERS", "FLOWER_ALLOW_UNAUTHENTICATED", "QUEUE_TYPE",
    "QUEUE_DELIVERY_LIMIT", "PRODUCER_HEALTH_FILE",
    "WORKER_MINGLE", "WORKER_GOSSIP", "WORKER_REMOTE_CONTROL",
    "FLOWER_STATE_SAVE_INTERVAL", "FLOWER_PURGE_OFFLINE_WORKERS", "WORKER_TASK_MODULES",
    "FLOWER_BROKER_API",
    "BEAT_SCHEDULE", "BEAT_SCHEDULE_FILE", "BEAT_HEALTH_FILE",
    "PRODUCER_RATE", "PRODUCER_COUNT", "PRODUCER_IDLE_AFTER_COUNT",
)


@dataclass
class Processes:
    """Starts processes for one test and stops each by its PID (and its own process group) in teardown."""

    log_dir: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: Sequence[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            list(args), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        process.log_path = self.log_dir / f"{name}.log"  # type: ignore[attr-defined]
        self.started.append(process)
        return process

    def taskqueue(self, *args: str, env: dict[str, str], name: str | None = None) -> subprocess.Popen[bytes]:
        return self.start([str(VENV_BIN / "taskqueue"), *args], env, name or "-".join(args))

    @staticmethod
    def output(process: subprocess.Popen[bytes]) -> str:
        path: Path = process.log_path  # type: ignore[attr-defined]
        return path.read_text(errors="replace")

    @classmethod
    def tail(cls, process: subprocess.Popen[bytes], lines: int = 40) -> str:
        return "\n".join(cls.output(process).splitlines()[-lines:])

    @staticmethod
    def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process, wait, escalate to SIGKILL of its group; returns the exit code."""
        return stop_process(process, sig, timeout)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    manager = Processes(log_dir=tmp_path)
    yield manager
    manager.stop_all()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment without any runtime variable: each test sets only what it means to."""
    for name in RUNTIME_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="session")
def session_broker() -> Iterator[PrivateBroker | None]:
    """The private RabbitMQ node the session starts when BROKER_URL is unset (own ports, data in a temp dir,
    stopped by PID at the session's end), with its Prometheus endpoint on (the metric-name tests scrape it);
    None when BROKER_URL names the broker."""
    if os.environ.get("BROKER_URL") is not None:
        yield None
        return
    server = find_rabbitmq_server()
    if server is None:
        pytest.fail("no BROKER_URL and rabbitmq-server is not installed: run scripts/setup.sh")
    broker = PrivateBroker.prepare(server, dict(os.environ), name="taskqueue-session", prometheus=True)
    try:
        broker.start()
        yield broker
    finally:
        broker.remove()


@pytest.fixture(scope="session")
def broker_url(session_broker: PrivateBroker | None) -> str:
    """The session's broker: the one BROKER_URL names, else the private node. Nothing is assumed to listen
    on 5672. A broker that does not work is a failure, not a skip."""
    url = session_broker.url if session_broker is not None else os.environ["BROKER_URL"]
    problem = broker_problem(url)
    if problem:
        pytest.fail(f"the test broker {mask_url(url)} does not work: {problem}")
    return url


@pytest.fixture(scope="session")
def test_queues(broker_url: str) -> Iterator[list[str]]:
    """Names of the queues the session's tests used; at the end, each must be gone from the shared broker
    (a teardown error otherwise): leaked quorum queues pile up on the machine's broker run after run."""
    names: list[str] = []
    yield names
    from taskqueue.app import dead_letter_queue_name, remove_task_queue

    left = []
    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        for name in names:
            leaked = [q for q in (name, dead_letter_queue_name(name)) if queue_exists(connection, q)]
            if leaked:
                remove_task_queue(connection, name)
                left += leaked
    assert not left, f"tests left {len(left)} queues on {mask_url(broker_url)} (now removed): {left[:10]}"


@pytest.fixture
def queue_name(broker_url: str, test_queues: list[str], processes: Processes) -> Iterator[str]:
    """A queue of this test's own, deleted afterwards, so runs never see each other's tasks."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    test_queues.append(name)
    yield name
    from taskqueue.app import remove_task_queue

    # The test's workers first: one still consuming would declare the queue again on reconnect.
    processes.stop_all()
    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        remove_task_queue(connection, name)


def runtime_environment(broker_url: str, queue_name: str, directory: Path) -> dict[str, str]:
    """Environment for a ``taskqueue`` subprocess: the broker, the queue, files in ``directory``."""
    env = {key: value for key, value in os.environ.items() if key not in RUNTIME_VARIABLES}
    env.update(
        BROKER_URL=broker_url,
        QUEUE_NAME=queue_name,
        HEALTH_FILE=str(directory / "worker.heartbeat"),
        PRODUCER_HEALTH_FILE=str(directory / "producer.heartbeat"),
        BEAT_HEALTH_FILE=str(directory / "beat.heartbeat"),
        BEAT_SCHEDULE_FILE=str(directory / "beat-state" / "schedule"),
        FLOWER_DB=str(directory / "flower.db"),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def runtime_env(broker_url: str, queue_name: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a ``taskqueue`` subprocess: the test broker, the test's queue, files in tmp_path."""
    return runtime_environment(broker_url, queue_name, tmp_path)


# --- Celery client and workers (tests of the worker, producer, health and delivery) ---------------------

#: Heartbeat cadence of test workers: quick, so health transitions show within a few seconds.
TEST_HEALTH_INTERVAL = "0.5"
TEST_HEALTH_MAX_AGE = "5"


def with_fast_heartbeat(env: dict[str, str]) -> dict[str, str]:
    """``env`` plus a fast heartbeat, for ``taskqueue worker`` subprocesses; and the per-task log lines
    (``received``, ``succeeded``: off by default), by which these tests follow single tasks."""
    return {**env, "HEALTH_INTERVAL": TEST_HEALTH_INTERVAL, "HEALTH_MAX_AGE": TEST_HEALTH_MAX_AGE,
            "WORKER_LOG_TASKS": "true"}


@pytest.fixture
def worker_env(runtime_env: dict[str, str]) -> dict[str, str]:
    """``runtime_env`` plus a fast heartbeat, for ``taskqueue worker`` subprocesses."""
    return with_fast_heartbeat(runtime_env)


@pytest.fixture
def celery_client(worker_env: dict[str, str]) -> Iterator[Any]:
    """A Celery app configured like the workers (same broker, queue, rpc:// results) to send and fetch."""
    from taskqueue.app import create_app
    from taskqueue.config import Settings

    settings = Settings(
        broker_url=worker_env["BROKER_URL"],  # type: ignore[arg-type]
        queue_name=worker_env["QUEUE_NAME"],
        health_file=Path(worker_env["HEALTH_FILE"]),
    )
    app = create_app(settings)
    yield app
    app.close()


def health_of(env: dict[str, str]) -> Any:
    """In-process ``taskqueue health worker`` for the worker run with ``env``."""
    from taskqueue.config import load_probe_settings
    from taskqueue.health import check_worker

    return check_worker(load_probe_settings(env))


def start_worker(
    processes: Processes, env: dict[str, str], name: str = "worker", timeout: float = 60
) -> subprocess.Popen[bytes]:
    """``taskqueue worker`` in a subprocess, returned once its heartbeat says it consumes its queue."""
    Path(env["HEALTH_FILE"]).unlink(missing_ok=True)
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


@pytest.fixture
def private_broker() -> Iterator[PrivateBroker]:
    """A RabbitMQ node of this test's own (own ports, data in a temp dir) that the test may stop and
    start again; its processes are stopped by PID and its directory removed in teardown."""
    server = find_rabbitmq_server()
    if server is None:
        pytest.skip("rabbitmq-server is not installed (scripts/setup.sh installs it)")
    broker = PrivateBroker.prepare(server, dict(os.environ), name="taskqueue-test")
    try:
        broker.start()
        yield broker
    finally:
        broker.remove()
