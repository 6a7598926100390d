"""The consumer bootstep keeping an inline worker (``taskqueue.pool.InlinePool``) alive and seen while a
long task holds its event loop, and stopping it if a task outlives its hard time limit.

A task that runs inline stops the loop's timers for as long as it runs. Without this step, after 2 x the
AMQP heartbeat (60 s) the connection counts as dead on both sides (the task's ack then fails and it runs
again), after the health probe's max age the pod is restarted, and after a few seconds Flower shows the
worker offline. Past one second of a task, a thread does those timers' work instead: AMQP heartbeats on the
consumer connection, Celery's ``worker-heartbeat`` event and the buffered task events (Flower then shows the
task as started), the acks held for the tasks before it (``taskqueue.acks``), the heartbeat file
(``consuming``, naming the task). It writes only while holding the
pool's lock, which the main thread takes before it touches a connection again.

A task still running ``HARD_LIMIT_GRACE`` seconds past its hard time limit did not stop at
``TimeLimitExceeded`` (it caught it, or it is stuck in C code): the step stops the worker, as prefork
would kill that pool process. The broker redelivers the message; a quorum queue dead-letters it after
``QUEUE_DELIVERY_LIMIT`` deliveries. If the thread cannot run at all (C code holding the GIL), the
heartbeat file goes stale and the liveness probe restarts the container.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Any

from celery import bootsteps

from taskqueue.app import settings_of
from taskqueue.bootsteps.heartbeat import HeartbeatStep
from taskqueue.heartbeat import CONSUMING, DISCONNECTED, STOPPED, HeartbeatWriter
from taskqueue.pool import InlinePool, RunningTask

logger = logging.getLogger("taskqueue.worker")

#: Seconds between two looks at the task in flight; a task shorter than this costs the thread nothing.
TICK = 1.0
#: Seconds past its hard time limit a task may still run before the worker stops under it.
HARD_LIMIT_GRACE = 10.0
#: Exit code of a worker stopped under a task that outlived its hard time limit.
EXIT_TASK_STUCK = 70


class GuardStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep running the guard thread of an inline pool (none for prefork)."""

    requires = ("celery.worker.consumer.heart:Heart", "celery.worker.consumer.tasks:Tasks")

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.settings = settings_of(parent.app)
        self._writer = HeartbeatWriter(self.settings.worker_health_file, logger)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._due: dict[str, float] = {}
        #: The task during which the broker connection was found lost (the loop reconnects after it).
        self._lost: str | None = None

    def start(self, c: Any) -> None:
        # One thread for the process: a reconnect restarts the step, the thread reads c's state afresh.
        if isinstance(c.pool, InlinePool) and self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(c, c.pool), name="taskqueue-guard",
                                            daemon=True)
            self._thread.start()

    def shutdown(self, c: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * TICK)
            self._thread = None

    def _run(self, c: Any, pool: InlinePool) -> None:
        while not self._stop.wait(TICK):
            try:
                self.watch(c, pool)
            except Exception:  # the guard must outlive any one failure (a broken connection: the loop's)
                logger.warning("guard: keeping the worker alive during a long task failed", exc_info=True)

    def watch(self, c: Any, pool: InlinePool) -> None:
        """One look at the task in flight: keep the worker alive for it, or stop the worker under it."""
        task = pool.current
        if task is None:
            self._due.clear()
            return
        if task.hard_limit is not None and task.elapsed() > task.hard_limit + HARD_LIMIT_GRACE:
            self._give_up(task)
        if task.elapsed() < TICK:
            return
        with pool.lock:
            if pool.current is task:
                self.keep_alive(c, task)

    def keep_alive(self, c: Any, task: RunningTask) -> None:
        """Do what the event loop's timers would: each at its own interval (first time: now)."""
        connection = c.connection
        # ``connected`` first: kombu's ``connection`` property would connect (from this thread) if not.
        amqp = connection.connection if connection is not None and connection.connected else None
        if amqp is None:
            self._lost = task.task_id
        elif amqp.heartbeat and self._lost != task.task_id and self._is_due("amqp", amqp.heartbeat / 2):
            try:
                amqp.send_heartbeat()
            except c.connection_errors as exc:
                # The loop will reconnect after the task; meanwhile the probe hears of it.
                logger.warning("guard: broker connection lost during task %s: %s", task.task_id, exc)
                self._lost = task.task_id
            else:
                # Frames the broker sent wait unread in the socket: it is alive. Without this, the loop's
                # first heartbeat check after the task would count them as missed and drop the connection.
                readable, _, _ = select.select([amqp.sock], [], [], 0)
                if readable:
                    amqp.last_heartbeat_received = time.monotonic()
        heart = getattr(c, "heart", None)
        if heart is not None and self._lost != task.task_id and self._is_due("events", heart.interval):
            heart._send("worker-heartbeat")  # Celery's own event, as its timer would send it
            # The task events the loop buffers (this task's received and started: Flower shows it running).
            c.event_dispatcher.flush()
        acks = c.taskqueue_acks
        if acks is not None and self._lost != task.task_id:
            acks.flush()  # the tasks before this one: acknowledged now, not after it
        if self._is_due("file", self.settings.health_interval):
            if self._lost == task.task_id:
                state, detail = DISCONNECTED, f"broker connection lost while running task {task.task_id}"
            else:
                state, detail = CONSUMING, f"running task {task.task_id} for {task.elapsed():.0f}s"
                if task.hard_limit is not None:
                    detail += f" (hard time limit {task.hard_limit:g}s)"
            self._writer.write(state, detail, HeartbeatStep.queues_of(c))

    def _is_due(self, what: str, interval: float) -> bool:
        now = time.monotonic()
        if now < self._due.get(what, 0.0):
            return False
        self._due[what] = now + interval
        return True

    def _give_up(self, task: RunningTask) -> None:
        logger.critical(
            "task %s still running %.0fs after its hard time limit (%gs): it did not stop at "
            "TimeLimitExceeded; stopping the worker (the broker redelivers the task; a quorum queue "
            "dead-letters it after QUEUE_DELIVERY_LIMIT deliveries)",
            task.task_id, task.elapsed() - (task.hard_limit or 0), task.hard_limit,
        )
        self._writer.write(STOPPED, f"task {task.task_id} outlived its hard time limit")
        logging.shutdown()
        os._exit(EXIT_TASK_STUCK)
