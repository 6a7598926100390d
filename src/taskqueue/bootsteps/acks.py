"""The consumer bootstep batching the worker's late acks (``taskqueue.acks``): an ``AckBatcher`` on each
new task channel, flushed at every turn of the event loop and when the consumer stops."""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from taskqueue.acks import AckBatcher

logger = logging.getLogger("taskqueue.worker")


class AckBatchStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep: ``c.taskqueue_acks`` is the batcher of the current task channel (None without an
    event loop, where acks go out one by one as Celery sends them)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        if c.hub is None or c.task_consumer is None:
            return
        prefetch = int(c.qos.value) if c.qos is not None else 0
        c.taskqueue_acks = AckBatcher(c.task_consumer.channel, prefetch)
        # The hub calls its tick callbacks once per turn, before it waits on the sockets again.
        c.hub.on_tick.add(self._on_tick)
        self._consumer = c

    def _on_tick(self) -> None:
        batcher = self._consumer.taskqueue_acks
        if batcher is not None:
            batcher.flush()

    def stop(self, c: Any) -> None:
        batcher, c.taskqueue_acks = c.taskqueue_acks, None
        if c.hub is not None:
            c.hub.on_tick.discard(self._on_tick)
        if batcher is None:
            return
        held = len(batcher.pending)
        try:
            batcher.flush()
        except (*c.connection_errors, *c.channel_errors) as exc:
            # The connection is gone: the broker redelivers what was not acknowledged.
            logger.warning("%d ack(s) not sent before the channel closed (%s): the broker redelivers "
                           "those tasks", held, exc)

    def shutdown(self, c: Any) -> None:
        self.stop(c)
