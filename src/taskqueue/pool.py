"""The worker's default pool (``WORKER_POOL=solo``): each task runs in the worker's own process, between two
turns of its event loop, with Celery's time limits kept.

Why not prefork by default: there the main process hands every task to a pool process through a pipe and
reads the result back, two process wake-ups per task on top of the broker's; on a busy worker that
plumbing, not the tasks, is the limit. Inline, one process per CPU drains more than a prefork worker of
two (``benchmarks/bench_compare.py``); a pod scales with replicas instead of pool processes.

What inline execution would lose, and how it is kept:

- Time limits: Celery's solo pool ignores them. Here a timer (SIGALRM: the task runs in the main thread)
  raises ``SoftTimeLimitExceeded`` in the task at the soft limit and ``TimeLimitExceeded`` at the hard
  one, which fails the task as prefork's kill does (and acknowledges it: task_acks_on_failure_or_timeout).
  A task that swallows it is the guard's (``taskqueue.bootsteps.guard``): it stops the worker.
- Everything the event loop does on a timer while a long task holds it (AMQP heartbeats, the heartbeat
  file, Flower's worker heartbeats): the guard does it from a thread, while :attr:`InlinePool.current`
  says a task runs, holding :attr:`InlinePool.lock` so the loop does not resume under it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from celery.concurrency.base import apply_target
from celery.concurrency.solo import TaskPool as SoloPool
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

logger = logging.getLogger("taskqueue.worker")


@dataclass
class RunningTask:
    """The task the pool is running: what the guard and the time-limit timer know of it."""

    task_id: str
    started: float
    soft_limit: float | None
    hard_limit: float | None
    soft_raised: bool = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class InlinePool(SoloPool):  # type: ignore[misc]
    """Celery's solo pool with the soft and hard time limits enforced, and the task in flight exposed to the
    guard thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_apply = self.apply_limited
        #: The task running now (None between tasks). Set before the task starts; cleared, holding
        #: ``lock``, before anything else runs on the main thread.
        self.current: RunningTask | None = None
        #: Held by the guard while it writes to the broker connections on the main thread's behalf.
        self.lock = threading.Lock()
        #: Called on the main thread after each task, before its result and ack go out (the drain's cue:
        #: a SIGTERM that came during the task stops consuming before the ack frees a delivery).
        self.after_task: list[Callable[[], None]] = []

    def on_start(self) -> None:
        super().on_start()
        # The worker starts its pool on the main thread, where the tasks run and where signals land.
        signal.signal(signal.SIGALRM, self._on_alarm)

    def on_stop(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().on_stop()

    def apply_limited(
        self,
        target: Callable[..., Any],
        args: Any = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        soft_timeout: float | None = None,
        correlation_id: str | None = None,
        **options: Any,
    ) -> None:
        """Celery's ``apply_target`` (accept, run, callback: all on this thread) with the run limited."""
        soft = soft_timeout if soft_timeout and (not timeout or soft_timeout < timeout) else None
        task = RunningTask(correlation_id or "?", time.monotonic(), soft, timeout or None)

        def run(*a: Any, **kw: Any) -> Any:
            self.current = task
            self._arm(soft or task.hard_limit)
            try:
                return target(*a, **kw)
            finally:
                self._arm(None)
                # The guard may be writing a heartbeat for this task: the callback (result, ack) waits.
                with self.lock:
                    self.current = None
                for hook in self.after_task:
                    hook()

        apply_target(run, args, kwargs, **options)

    @staticmethod
    def _arm(seconds: float | None) -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds or 0)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        task = self.current
        if task is None:  # a late alarm between tasks: nothing to interrupt
            return
        if task.soft_limit is not None and not task.soft_raised:
            task.soft_raised = True
            if task.hard_limit is not None:
                self._arm(task.hard_limit - task.soft_limit)
            logger.warning("Soft time limit (%gs) exceeded for task %s", task.soft_limit, task.task_id)
            raise SoftTimeLimitExceeded(task.soft_limit)
        logger.error("Hard time limit (%gs) exceeded for task %s", task.hard_limit, task.task_id)
        raise TimeLimitExceeded(task.hard_limit)
