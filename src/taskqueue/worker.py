"""``taskqueue worker``: the Celery worker, with the bootsteps of ``taskqueue.bootsteps`` (a heartbeat for
the health probe, the SIGTERM drain, the inline pool's guard). By default (``WORKER_POOL=solo``) each task
runs in the worker process itself (``taskqueue.pool``); ``prefork`` runs them in pool processes.

Signals: the worker installs its own handlers, so they work when it runs as PID 1 (the kernel drops
only signals a PID 1 does not handle): SIGTERM drains (``taskqueue.bootsteps.drain``: stop consuming,
finish and acknowledge in-flight tasks with the event loop running, then exit), SIGINT is Celery's warm
shutdown, SIGQUIT its cold one. Under an init, use one that signals only its child (tini's default,
``dumb-init --single-child``): a signal sent to the whole process group also reaches the pool processes,
which then die mid-task; late acks with reject-on-worker-lost put those tasks back in the queue.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

from celery.app.trace import LOG_SUCCESS

from taskqueue.app import create_app, import_task_modules
from taskqueue.bootsteps import add_worker_steps
from taskqueue.config import ConfigError, Settings
from taskqueue.heartbeat import STOPPED, write_heartbeat

logger = logging.getLogger("taskqueue.worker")

#: The pool class of WORKER_POOL=solo: Celery's solo pool with its time limits kept and a guard thread.
INLINE_POOL = "taskqueue.pool:InlinePool"
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


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``app.Worker`` (the options of ``celery worker``)."""
    return {
        # Unique per process: two workers on one host must not share a node name (pidbox replies, Flower).
        "hostname": f"celery.{os.getpid()}@{socket.gethostname()}",
        "queues": [settings.queue_name],
        "concurrency": settings.worker_concurrency,
        "pool": INLINE_POOL if settings.worker_pool == "solo" else "prefork",
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
    add_worker_steps(app)
    options = worker_options(settings)
    worker = app.Worker(**options)
    logger.info(
        "taskqueue worker: broker %s, queue %s (%s), pool %s, concurrency %d, heartbeat %s every %gs, "
        "extra task modules: %s",
        settings.broker_display, settings.queue_name, settings.queue_type, settings.worker_pool,
        settings.worker_concurrency,
        settings.worker_health_file, settings.health_interval,
        ", ".join(settings.worker_task_modules) or "none",
    )
    try:
        worker.start()
    finally:
        # Whatever the way out, the probe must not find a "consuming" heartbeat of a finished worker.
        try:
            write_heartbeat(settings.worker_health_file, STOPPED, detail="worker exited")
        except OSError as exc:
            logger.error("cannot write heartbeat file %s: %s", settings.worker_health_file, exc)
    code = worker.exitcode
    return int(code) if code else 0
