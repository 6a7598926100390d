"""The consumer bootstep owning SIGTERM: a warm shutdown that acknowledges what it finishes.

On SIGTERM (Kubernetes stopping the pod) the worker stops taking tasks, lets the ones it holds finish
while its event loop keeps turning, so their results and acks go out, and only then shuts down.

Why not Celery's own warm shutdown alone: it stops the event loop first and then joins the pool. A task
that finishes during that join may never be acknowledged (RabbitMQ requeues it and it runs twice), and
its pool process can wait 30 s for the main process to read its result (celery#3802; seen here in about
one shutdown in ten). After draining, nothing is in flight when Celery's shutdown runs.
"""

from __future__ import annotations

import logging
import sys
import time
from types import FrameType
from typing import Any

from celery import bootsteps, platforms
from celery.worker import state

from taskqueue.app import settings_of
from taskqueue.pool import InlinePool

logger = logging.getLogger("taskqueue.worker")

#: Seconds between two checks of what is still running; also the delay before draining starts.
CHECK_INTERVAL = 0.2
#: Extra seconds beyond the longest the held tasks may take, before Celery's shutdown takes over anyway.
DEADLINE_MARGIN = 10.0


class DrainStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep owning SIGTERM. The signal handler only sets a flag; the event loop's timer does
    the work (cancel the queue, watch the held tasks, then ask Celery to stop), so nothing runs inside a
    signal handler but an assignment. A second SIGTERM skips the wait, and so does one that arrives while
    the broker connection is down."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.requested = False
        self.deadline: float | None = None
        self._timer_entry: Any = None

    def start(self, c: Any) -> None:
        # The consumer's steps start after the worker installed Celery's handlers: this one replaces
        # Celery's SIGTERM handler (SIGINT and SIGQUIT keep Celery's warm and cold shutdowns).
        platforms.signals["SIGTERM"] = self._on_sigterm
        c.taskqueue_drain = self
        self._timer_entry = c.timer.call_repeatedly(CHECK_INTERVAL, self._tick, (c,))
        if isinstance(c.pool, InlinePool) and not c.pool.after_task:
            # An inline task holds the loop and its timer: the drain begins as the task ends instead, before
            # its ack lets the broker deliver another message.
            c.pool.after_task.append(lambda: self._begin_if_requested(c))

    def stop(self, c: Any) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()
            self._timer_entry = None

    def shutdown(self, c: Any) -> None:
        self.stop(c)

    @property
    def draining(self) -> bool:
        return self.deadline is not None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.requested or self._timer_entry is None:
            # A second SIGTERM, or no event loop to drain with: the step is stopped while the consumer
            # reconnects to a lost broker (nothing could be acked over that connection anyway). Celery's
            # warm shutdown now; its reconnect loop checks the flag between attempts.
            state.should_stop = 0
        self.requested = True

    def _begin_if_requested(self, c: Any) -> None:
        if self.requested and self.deadline is None and self._timer_entry is not None:
            self._begin(c)

    def _tick(self, c: Any) -> None:
        if not self.requested:
            return
        self._begin_if_requested(c)
        held = len(state.reserved_requests)
        if held == 0:
            logger.info("drained: no task in flight, shutting down")
            state.should_stop = 0
        elif time.monotonic() > self.deadline:  # type: ignore[operator]
            logger.warning("still %d task(s) in flight past the drain deadline: shutting down", held)
            state.should_stop = 0

    def _begin(self, c: Any) -> None:
        settings = settings_of(c.app)
        limit = settings.task_time_limit * settings.worker_prefetch_multiplier
        self.deadline = time.monotonic() + limit + DEADLINE_MARGIN
        # Same words as Celery's own message: operators and log alerts know it.
        print("worker: Warm shutdown (MainProcess): SIGTERM, finishing "
              f"{len(state.reserved_requests)} task(s) in flight, taking no new ones",
              file=sys.__stdout__, flush=True)
        for queue in list(c.task_consumer.queues) if c.task_consumer is not None else []:
            c.cancel_task_queue(queue.name)

