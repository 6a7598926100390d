"""Nothing is lost: what the worker cannot run ends in ``<queue>.dead-letter``, and the worker keeps serving.

Raw messages are published with kombu straight to the work queue (the default exchange routes by queue
name), the way a buggy or hostile client would; the dead-letter queue is then read with ``basic_get``
(never declared here: a declare with other arguments would fail with PRECONDITION_FAILED).
"""

from __future__ import annotations

import pickle
import signal
from typing import Any

import psutil
import pytest
from celery.exceptions import NotRegistered
from kombu.connection import Connection

from taskqueue.app import ADD_TASK, create_app, dead_letter_queue_name
from taskqueue.config import Settings
from tests.support.brokers import queue_depth
from tests.support.processes import Processes, in_sleep
from tests.support.tasks import SLEEP_TASK, with_test_tasks
from tests.support.waiting import wait_until
from tests.support.workers import health_of, start_worker

pytestmark = pytest.mark.integration

MALFORMED_JSON = b"\xff not json"
PICKLED = pickle.dumps({"task": "taskqueue.tasks.add", "args": (1, 2)})


def drain(broker_url: str, name: str, limit: int = 100) -> list[Any]:
    """Take (and ack) every message of queue ``name``, at most ``limit``."""
    messages = []
    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        for _ in range(limit):
            message = channel.basic_get(name, no_ack=True)
            if message is None:
                break
            messages.append(message)
    return messages


def publish_raw(broker_url: str, queue: str, body: bytes, content_type: str, encoding: str) -> None:
    """Publish ``body`` as is (no serializer) to ``queue`` through the default exchange."""
    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        connection.Producer().publish(
            body, exchange="", routing_key=queue, content_type=content_type, content_encoding=encoding,
            serializer=None, retry=True,
        )


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_undecodable_and_unknown_messages_are_dead_lettered(
    processes: Processes, worker_env: dict[str, str], broker_url: str, queue_type: str
) -> None:
    env = {**worker_env, "QUEUE_TYPE": queue_type}
    queue = env["QUEUE_NAME"]
    dead_letter = dead_letter_queue_name(queue)
    worker = start_worker(processes, env)
    client = create_app(Settings(broker_url=broker_url, queue_name=queue, queue_type=queue_type))  # type: ignore[arg-type]
    try:
        publish_raw(broker_url, queue, MALFORMED_JSON, "application/json", "utf-8")
        publish_raw(broker_url, queue, PICKLED, "application/x-python-serialize", "binary")
        unknown = client.send_task("taskqueue.tasks.no_such_task", args=(1, 2))
        with pytest.raises(NotRegistered):
            unknown.get(timeout=30)  # the worker also reports it as failed to the caller

        wait_until(lambda: queue_depth(broker_url, dead_letter) == 3, timeout=30,
                   what="3 dead-lettered messages")
        # The worker survived all three and still serves.
        assert client.send_task(ADD_TASK, args=(2, 3)).get(timeout=30) == 5
    finally:
        client.close()
    assert worker.poll() is None and health_of(env).healthy

    messages = drain(broker_url, dead_letter)
    assert len(messages) == 3
    # py-amqp hands over a body it could decode as text as str: compare bytes.
    bodies = [m.body if isinstance(m.body, bytes) else m.body.encode(m.content_encoding) for m in messages]
    assert MALFORMED_JSON in bodies and PICKLED in bodies
    assert "taskqueue.tasks.no_such_task" in [(message.headers or {}).get("task") for message in messages]
    for message in messages:
        # x-death says where it came from and why: rejected from the work queue.
        death = message.headers["x-death"][0]
        assert (death["queue"], death["reason"]) == (queue, "rejected")
    assert queue_depth(broker_url, queue) == 0

    output = processes.output(worker)
    assert output.count("undecodable message rejected to the dead-letter queue") == 2
    assert "content type 'application/x-python-serialize', encoding 'binary'" in output
    assert f"{len(MALFORMED_JSON)} bytes" in output
    assert "not json" not in output  # one line about the message, never its body


def test_poison_task_is_dead_lettered_after_the_delivery_limit(
    processes: Processes, worker_env: dict[str, str], broker_url: str
) -> None:
    """A task that kills its worker process each time it runs (segfault, OOM kill): redelivered until
    QUEUE_DELIVERY_LIMIT, then dead-lettered (quorum queues), instead of a crash loop for ever."""
    limit = 2
    env = with_test_tasks({**worker_env, "QUEUE_DELIVERY_LIMIT": str(limit), "WORKER_POOL": "prefork"})
    queue = env["QUEUE_NAME"]
    worker = start_worker(processes, env)
    # The client declares the queue with the worker's arguments (another limit: PRECONDITION_FAILED).
    client = create_app(Settings(broker_url=broker_url, queue_name=queue, queue_delivery_limit=limit))  # type: ignore[arg-type]
    try:
        run_poison_task(processes, worker, client, broker_url, queue, limit)
    finally:
        client.close()


def run_poison_task(
    processes: Processes, worker: Any, client: Any, broker_url: str, queue: str, limit: int
) -> None:
    """Send a ``sleep`` task, SIGKILL the process running it at each delivery; check it dead-letters."""
    poison = client.send_task(SLEEP_TASK, args=(120,))
    received = f"[{poison.id}] received"
    # Each return counts (Celery rejects with requeue when the pool process dies): deliveries 1..limit
    # are requeued, the return of delivery limit+1 exceeds the limit.
    for delivery in range(1, limit + 2):
        wait_until(lambda n=delivery: processes.output(worker).count(received) >= n,  # type: ignore[misc]
                   timeout=60, what=f"delivery {delivery} of the poison task")
        # Kill the pool process while it runs the task, not in the instant between "received" and the
        # task's start (concurrency 1: one pool process; a killed one is replaced).
        running = wait_until(
            lambda: [child for child in psutil.Process(worker.pid).children() if in_sleep(child.pid)],
            timeout=10, what="the pool process to run the task",
        )
        running[0].send_signal(signal.SIGKILL)
    assert_dead_lettered(broker_url, queue, poison.id)
    # No further delivery, and the worker (with a new pool process) serves the next task.
    assert client.send_task(ADD_TASK, args=(4, 5)).get(timeout=30) == 9
    assert processes.output(worker).count(received) == limit + 1
    assert worker.poll() is None


def assert_dead_lettered(broker_url: str, queue: str, task_id: str) -> None:
    """The message of ``task_id`` is the one message of the dead-letter queue, for its delivery limit."""
    dead_letter = dead_letter_queue_name(queue)
    wait_until(lambda: queue_depth(broker_url, dead_letter) == 1, timeout=60,
               what="the poison task dead-lettered")
    assert queue_depth(broker_url, queue) == 0
    [message] = drain(broker_url, dead_letter)
    assert message.headers["id"] == task_id
    death = message.headers["x-death"][0]
    assert (death["queue"], death["reason"]) == (queue, "delivery_limit")


def test_poison_task_of_a_solo_worker_is_dead_lettered_after_the_delivery_limit(
    processes: Processes, worker_env: dict[str, str], broker_url: str
) -> None:
    """With the default pool a task runs in the worker process itself: one that kills its process kills
    the worker, which Kubernetes restarts (here the test starts the next one). The broker redelivers the
    message to it until QUEUE_DELIVERY_LIMIT, then dead-letters it, as with prefork."""
    limit = 2
    env = with_test_tasks({**worker_env, "QUEUE_DELIVERY_LIMIT": str(limit)})
    queue = env["QUEUE_NAME"]
    client = create_app(Settings(broker_url=broker_url, queue_name=queue, queue_delivery_limit=limit))  # type: ignore[arg-type]
    try:
        poison = client.send_task(SLEEP_TASK, args=(120,))
        received = f"[{poison.id}] received"
        for delivery in range(1, limit + 2):
            worker = start_worker(processes, env, name=f"worker-{delivery}")
            wait_until(lambda w=worker: received in processes.output(w) and in_sleep(w.pid),  # type: ignore[misc]
                       timeout=60, what=f"delivery {delivery} of the poison task to run")
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        worker = start_worker(processes, env, name="worker-after")
        assert_dead_lettered(broker_url, queue, poison.id)
        assert client.send_task(ADD_TASK, args=(4, 5)).get(timeout=30) == 9
        assert received not in processes.output(worker)
    finally:
        client.close()
