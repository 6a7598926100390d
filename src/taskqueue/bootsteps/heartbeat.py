"""The consumer bootstep writing the worker's heartbeat file (``WORKER_HEALTH_FILE``), which ``taskqueue
health worker`` judges: see ``taskqueue.heartbeat`` for the states."""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.bootsteps import CLOSE, TERMINATE
from celery.worker import state as worker_state

from taskqueue.app import settings_of
from taskqueue.heartbeat import (
    CONSUMING,
    DISCONNECTED,
    DRAINING,
    NOT_CONSUMING,
    STARTING,
    STOPPED,
    HeartbeatWriter,
)

logger = logging.getLogger("taskqueue.worker")


class HeartbeatStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep writing the heartbeat file from the event loop's timer.

    The beat runs on the worker's event loop (hub) timer, so a wedged loop stops it (the file goes stale).
    Each beat says ``consuming`` only if the broker connection is open and the task consumer holds a
    consumer tag for every queue; otherwise ``not-consuming``. When the consumer blueprint restarts after
    a connection loss, ``stop`` marks ``disconnected`` at once; a new ``start`` resumes the beats.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        # ``parent`` is the consumer; Celery builds the step and passes no settings: the app carries them.
        self.settings = settings_of(parent.app)
        self._timer_entry: Any = None
        self._writer = HeartbeatWriter(self.settings.worker_health_file, logger)

    def start(self, c: Any) -> None:
        self._write(STARTING, "consumer starting")
        # First beat on the loop's first turn (after consume() has been called), then every interval.
        c.timer.call_after(0.0, self.beat, (c,))
        self._timer_entry = c.timer.call_repeatedly(self.settings.health_interval, self.beat, (c,))

    def stop(self, c: Any) -> None:
        self._cancel()
        shutting_down = c.blueprint.state in (CLOSE, TERMINATE)
        self._write(STOPPED if shutting_down else DISCONNECTED,
                    "worker shutting down" if shutting_down else "broker connection lost, reconnecting")

    def terminate(self, c: Any) -> None:
        self.stop(c)

    def shutdown(self, c: Any) -> None:
        self._cancel()
        self._write(STOPPED, "worker shut down")

    def beat(self, c: Any) -> None:
        drain = getattr(c, "taskqueue_drain", None)
        if drain is not None and drain.draining:
            self._write(DRAINING, f"SIGTERM: finishing {len(worker_state.reserved_requests)} task(s)")
            return
        state, detail = consumer_state(c, [self.settings.queue_name])
        self._write(state, detail, queues=self.queues_of(c))

    def _cancel(self) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()
            self._timer_entry = None

    @staticmethod
    def queues_of(c: Any) -> list[str]:
        """The queues consumer ``c`` consumes now."""
        consumer = c.task_consumer
        return [queue.name for queue in consumer.queues] if consumer is not None else []

    def _write(self, state: str, detail: str, queues: list[str] | None = None) -> None:
        # Never kills the worker over the file; the probe fails on the stale file, the log says why once.
        self._writer.write(state, detail, queues)


def consumer_state(c: Any, expected: list[str]) -> tuple[str, str]:
    """(state, detail) of a Celery consumer: connected and consuming every ``expected`` queue, or what is
    wrong. The expected queues come from the settings, not from the consumer: a queue dropped from it (by
    ``celery control cancel_consumer``, or a broker-side cancel) is exactly the zombie to report."""
    connection = c.connection
    if connection is None or not connection.connected:
        return DISCONNECTED, "broker connection lost"
    consumer = c.task_consumer
    if consumer is None:
        return NOT_CONSUMING, "no task consumer"
    if not getattr(consumer.channel, "is_open", True):
        return NOT_CONSUMING, "task channel closed"
    missing = [name for name in expected if not consumer.consuming_from(name)]
    if missing:
        return NOT_CONSUMING, f"connected but not consuming queue(s) {','.join(missing)}"
    return CONSUMING, ""
