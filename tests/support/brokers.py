"""RabbitMQ for tests and benchmarks: a private node started and removed around a block, whether a broker
can serve at all, and the queues a run leaves behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from kombu.connection import Connection

from taskqueue.private_broker import INSTALL_HINT, PrivateBroker, find_rabbitmq_server

#: What to do when rabbitmq-server is not installed: fail or skip the test (pytest.fail, pytest.skip), or
#: end the benchmark (:func:`exit_missing`); called with the reason.
Missing = Callable[[str], NoReturn]


def exit_missing(reason: str) -> NoReturn:
    raise SystemExit(reason)


@contextlib.contextmanager
def private_node(
    name: str, *, missing: Missing, management: bool = False, prometheus: bool = False
) -> Iterator[PrivateBroker]:
    """A private RabbitMQ node (own ports, data in a temporary directory) for the block: started, then
    stopped by PID and removed. Without rabbitmq-server, ``missing(reason)``."""
    server = find_rabbitmq_server()
    if server is None:
        missing(f"{INSTALL_HINT} (scripts/setup.sh installs it)")
    broker = PrivateBroker.prepare(server, dict(os.environ), name=name, management=management,
                                   prometheus=prometheus)
    try:
        broker.start()
        yield broker
    finally:
        broker.remove()


def broker_problem(url: str) -> str | None:
    """Why the broker at ``url`` cannot serve the tests, or None: it must answer and confirm a publish.

    A broker in a resource alarm (low disk or memory) accepts connections but holds every publish; without
    this check each worker test would time out with no hint of the cause."""
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


def queue_depth(broker_url: str, name: str) -> int:
    """Ready messages in queue ``name`` (passive declare: checks, never creates or changes it)."""
    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        return int(connection.default_channel.queue_declare(name, passive=True).message_count)


def remove_queue(broker_url: str, name: str) -> None:
    """Delete the task queue ``name`` (and its dead-letter queue and exchanges) from the broker."""
    from taskqueue.app import remove_task_queue

    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        remove_task_queue(connection, name)
