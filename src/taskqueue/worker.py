"""``taskqueue worker``: the Celery worker, with a heartbeat bootstep for the health probe.

Signals: the worker installs its own handlers, so they work when it runs as PID 1 (the kernel drops
only signals a PID 1 does not handle): SIGTERM drains (``taskqueue.drain``: stop consuming, finish and
acknowledge in-flight tasks with the event loop running, then exit), SIGINT is Celery's warm shutdown,
SIGQUIT its cold one. Under an init, use one that signals only its child (tini's default,
``dumb-init --single-child``): a signal sent to the whole process group also reaches the pool processes,
which then die mid-task; late acks with reject-on-worker-lost put those tasks back in the queue.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

from celery import bootsteps
from celery.app.trace import LOG_SUCCESS
from celery.bootsteps import CLOSE, TERMINATE
from celery.worker import state as worker_state

from taskqueue.app import create_app, import_task_modules
from taskqueue.config import ConfigError, Settings
from taskqueue.drain import drain_step
from taskqueue.heartbeat import (
    CONSUMING,
    DISCONNECTED,
    DRAINING,
    NOT_CONSUMING,
    STARTING,
    STOPPED,
    HeartbeatWriter,
    write_heartbeat,
)

logger = logging.getLogger("taskqueue.worker")

#: Logger of Celery's "Task ... received" line, the only info line it writes (in the consumer, per task).
RECEIVED_LOGGER = "celery.worker.strategy"
#: Logger of the "Task ... succeeded in ...s" line; also of failures, retries and expected errors (a bad
#: argument: info, one line), which must stay.
TRACE_LOGGER = "celery.app.trace"


class DropSucceededLines(logging.Filter):
    """Drops Celery's "Task ... succeeded" lines only (pool processes: the main loop never pays for them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg is not LOG_SUCCESS


def quiet_per_task_lines(level: str) -> None:
    """Stop Celery's two info lines per task: "received" by the level of its logger (Celery reads it once
    and then skips building the line), "succeeded" by a filter that leaves the trace logger's failure and
    retry lines alone."""
    received = logging.getLogger(RECEIVED_LOGGER)
    received.setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    trace = logging.getLogger(TRACE_LOGGER)
    if not any(isinstance(f, DropSucceededLines) for f in trace.filters):
        trace.addFilter(DropSucceededLines())


class HeartbeatStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep writing the heartbeat file from the event loop's timer.

    The beat runs on the worker's event loop (hub) timer, so a wedged loop stops it (the file goes stale).
    Each beat says ``consuming`` only if the broker connection is open and the task consumer holds a
    consumer tag for every queue; otherwise ``not-consuming``. When the consumer blueprint restarts after
    a connection loss, ``stop`` marks ``disconnected`` at once; a new ``start`` resumes the beats.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)
    # Set by ``heartbeat_step``: the step is instantiated by Celery, which passes no settings.
    settings: Settings

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer_entry: Any = None
        self._writer = HeartbeatWriter(self.settings.health_file, logger)

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
        self._write(state, detail, queues=self._queues(c))

    def _cancel(self) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()
            self._timer_entry = None

    @staticmethod
    def _queues(c: Any) -> list[str]:
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


def heartbeat_step(settings: Settings) -> type[HeartbeatStep]:
    """A HeartbeatStep class bound to ``settings``."""
    return type("HeartbeatStep", (HeartbeatStep,), {"settings": settings})


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``app.Worker`` (the options of ``celery worker``)."""
    return {
        # Unique per process: two workers on one host must not share a node name (pidbox replies, Flower).
        "hostname": f"celery.{os.getpid()}@{socket.gethostname()}",
        "queues": [settings.queue_name],
        "concurrency": settings.worker_concurrency,
        "pool": "prefork",
        "loglevel": settings.log_level.upper(),
        # Mingle waits ~1 s for peers at every start; gossip tracks peers' events. Nothing here uses them.
        "without_mingle": not settings.worker_mingle,
        "without_gossip": not settings.worker_gossip,
        # Worker heartbeats (events) stay on: Flower uses them to show the worker online.
        "without_heartbeat": False,
    }


def run_worker(settings: Settings) -> int:
    """Run the worker until it is shut down; return its exit code."""
    if os.environ.get("REMAP_SIGTERM"):
        # billiard would make SIGTERM a cold shutdown (in-flight tasks aborted): refuse, say why.
        print("taskqueue worker: REMAP_SIGTERM is set; unset it (SIGTERM must stay a warm shutdown)")
        return 2
    try:
        import_task_modules(settings)
    except ConfigError as exc:
        # Same form as the CLI's configuration errors: one line naming the variable, exit 2.
        print(f"taskqueue: {exc}", file=sys.stderr)
        return 2
    if not settings.worker_log_tasks:
        quiet_per_task_lines(settings.log_level)
    app = create_app(settings)
    app.steps["consumer"].add(heartbeat_step(settings))
    app.steps["consumer"].add(drain_step(settings))
    options = worker_options(settings)
    worker = app.Worker(**options)
    logger.info(
        "taskqueue worker: broker %s, queue %s (%s), concurrency %d, heartbeat %s every %gs, "
        "extra task modules: %s",
        settings.broker_display, settings.queue_name, settings.queue_type, settings.worker_concurrency,
        settings.health_file, settings.health_interval, ", ".join(settings.worker_task_modules) or "none",
    )
    try:
        worker.start()
    finally:
        # Whatever the way out, the probe must not find a "consuming" heartbeat of a finished worker.
        try:
            write_heartbeat(settings.health_file, STOPPED, detail="worker exited")
        except OSError as exc:
            logger.error("cannot write heartbeat file %s: %s", settings.health_file, exc)
    code = worker.exitcode
    return int(code) if code else 0
