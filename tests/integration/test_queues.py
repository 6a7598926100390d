"""The queue topology ``taskqueue.app.task_queue`` declares, and its removal for throw-away queues."""

from __future__ import annotations

from pathlib import Path

import pytest
from amqp.exceptions import NotFound
from kombu.connection import Connection

from taskqueue.app import dead_letter_queue_name, remove_task_queue, task_queue
from taskqueue.config import Settings
from tests.support.brokers import queue_exists

pytestmark = pytest.mark.integration


def exchange_exists(connection: Connection, exchange: str) -> bool:
    try:
        connection.channel().exchange_declare(exchange, "topic", passive=True)  # type: ignore[no-untyped-call]
    except NotFound:
        return False
    return True


def test_remove_task_queue_deletes_what_task_queue_declares(
    broker_url: str, queue_name: str, tmp_path: Path
) -> None:
    settings = Settings(broker_url=broker_url, queue_name=queue_name, worker_health_file=tmp_path / "hb")  # type: ignore[arg-type]
    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        task_queue(settings)(connection.channel()).declare()
        dead_letter = dead_letter_queue_name(queue_name)
        assert queue_exists(connection, queue_name) and queue_exists(connection, dead_letter)
        assert exchange_exists(connection, queue_name)

        remove_task_queue(connection, queue_name)

        assert not queue_exists(connection, queue_name)
        assert not queue_exists(connection, dead_letter)
        assert not exchange_exists(connection, queue_name)
        remove_task_queue(connection, queue_name)  # already gone: nothing to do, no error
