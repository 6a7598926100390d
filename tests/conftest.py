"""Fixtures shared by every test layer: the broker, isolated queues, and processes stopped by PID. What they
build on (processes, environments, brokers, waiting) is in tests/support."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu.connection import Connection

from taskqueue.config import mask_url
from taskqueue.private_broker import PrivateBroker
from tests.support.brokers import broker_problem, private_node, queue_exists, remove_queue
from tests.support.processes import Processes
from tests.support.runtime import RUNTIME_VARIABLES, runtime_environment, with_fast_heartbeat
from tests.support.workers import client_app


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
    with private_node("taskqueue-session", prometheus=True, missing=pytest.fail) as broker:
        yield broker


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
    # The test's workers first: one still consuming would declare the queue again on reconnect.
    processes.stop_all()
    remove_queue(broker_url, name)


@pytest.fixture
def runtime_env(broker_url: str, queue_name: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a ``taskqueue`` subprocess: the test broker, the test's queue, files in tmp_path."""
    return runtime_environment(broker_url, queue_name, tmp_path)


# --- Celery client and workers (tests of the worker, producer, health and delivery) ---------------------


@pytest.fixture
def worker_env(runtime_env: dict[str, str]) -> dict[str, str]:
    """``runtime_env`` plus a fast heartbeat, for ``taskqueue worker`` subprocesses."""
    return with_fast_heartbeat(runtime_env)


@pytest.fixture
def celery_client(worker_env: dict[str, str]) -> Iterator[Any]:
    """A Celery app configured like the workers (same broker, queue, rpc:// results) to send and fetch."""
    heartbeat = Path(worker_env["WORKER_HEALTH_FILE"])
    app = client_app(worker_env["BROKER_URL"], worker_env["QUEUE_NAME"], heartbeat)
    yield app
    app.close()


@pytest.fixture
def private_broker() -> Iterator[PrivateBroker]:
    """A RabbitMQ node of this test's own (own ports, data in a temp dir) that the test may stop and
    start again; its processes are stopped by PID and its directory removed in teardown."""
    with private_node("taskqueue-test", missing=pytest.skip) as broker:
        yield broker
