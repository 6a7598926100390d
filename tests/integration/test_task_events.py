"""Task events (Flower's feed) are batched: every task still yields its task-received, task-started and
task-succeeded events, carried by a few messages instead of one publish per one to three events (Celery's
flush on every turn of the event loop)."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from taskqueue.app import ADD_TASK
from tests.support.processes import Processes
from tests.support.workers import start_worker

pytestmark = pytest.mark.integration

TASKS = 300
EVENT_TYPES = ("task-received", "task-started", "task-succeeded")


def test_every_task_event_arrives_in_few_messages(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    worker = start_worker(processes, worker_env)
    node = f"celery.{worker.pid}@"
    messages = 0
    events: Counter[str] = Counter()

    def on_message(body: Any, message: Any) -> None:
        nonlocal messages
        ours = [event for event in (body if isinstance(body, list) else [body])
                if str(event.get("hostname", "")).startswith(node)]  # not the client's task-sent events
        messages += bool(ours)
        events.update(event["type"] for event in ours if event["type"] in EVENT_TYPES)
        message.ack()

    with Connection(worker_env["BROKER_URL"]) as connection:  # type: ignore[no-untyped-call]
        events_exchange = Exchange("celeryev", type="topic")  # type: ignore[no-untyped-call]
        queue = Queue(exchange=events_exchange, routing_key="task.#", exclusive=True,  # type: ignore[no-untyped-call]
                      auto_delete=True)
        with connection.Consumer(queue, callbacks=[on_message], accept=["json"]):
            results = [celery_client.send_task(ADD_TASK, args=(i, 1), ignore_result=True)
                       for i in range(TASKS)]
            deadline = time.monotonic() + 60
            while events["task-succeeded"] < TASKS and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):  # no event within the half second
                    connection.drain_events(timeout=0.5)
    assert len(results) == TASKS
    assert events == {kind: TASKS for kind in EVENT_TYPES}
    # The worker's messages: one per flush, every tenth of a second, a few for the whole burst. Unbatched,
    # Celery publishes at least one message per three events (900 events: 300 messages or more).
    assert messages * 10 <= sum(events.values()), f"{messages} messages carried {sum(events.values())} events"
