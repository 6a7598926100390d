"""Late acks sent once per turn of the worker's event loop, one ``basic.ack multiple`` for a run of them.

With late acks, Celery sends one ``basic.ack`` per task: a socket write in the worker and a settle in the
broker's queue, per task, on the hot path (a fifth of an inline worker's time in the benchmark's profile).
:class:`AckBatcher` holds an ack until the loop's next turn (``flush``; before the loop waits for the
broker again), then sends the run of them as one ack with ``multiple`` set. Nothing is acknowledged
earlier than Celery asked, only a moment later: a worker that dies before the flush leaves those tasks
unacknowledged, and the broker redelivers them (at least once, as after any crash).

``multiple`` acknowledges every unsettled delivery up to a tag, so it is used only below the oldest
message the worker still holds (an ETA task waiting in the timer, a task still running in a pool process):
those stay unacknowledged until Celery acks them. Rejections go out at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("taskqueue.worker")

#: Acks held at most before a flush without waiting for the loop's turn, as a fraction of the prefetch
#: count: the broker delivers the next messages only once it has the acks, so holding all of them until
#: the turn ends would leave the worker idle for a round trip after every prefetch-full of tasks.
FLUSH_FRACTION = 4


class AckBatcher:
    """Takes over ``basic_ack`` and ``basic_reject`` of the task consumer's channel."""

    def __init__(self, channel: Any, prefetch_count: int = 0) -> None:
        #: Held acks that trigger a flush at once (a quarter of the prefetch count, at least one).
        self.limit = max(1, prefetch_count // FLUSH_FRACTION)
        self._send_ack: Callable[..., Any] = channel.basic_ack
        self._send_reject: Callable[..., Any] = channel.basic_reject
        #: Delivery tags the worker received and has not settled (acked or rejected) at the broker.
        self.outstanding: set[int] = set()
        #: Delivery tags Celery acknowledged that are not yet sent.
        self.pending: set[int] = set()
        channel.basic_ack = self.ack
        channel.basic_reject = self.reject

    def delivered(self, delivery_tag: int) -> None:
        """A message arrived (the consumer calls this before anything settles it)."""
        self.outstanding.add(delivery_tag)

    def ack(self, delivery_tag: int, multiple: bool = False, argsig: str = "Lb") -> None:
        if multiple or delivery_tag not in self.outstanding:
            # Not one this batcher tracks, or a caller's own multiple ack: in order, at once.
            self.flush()
            self._send_ack(delivery_tag, multiple=multiple)
            return
        self.pending.add(delivery_tag)
        if len(self.pending) >= self.limit:
            self.flush()

    def reject(self, delivery_tag: int, requeue: bool, argsig: str = "Lb") -> None:
        self.outstanding.discard(delivery_tag)
        self.pending.discard(delivery_tag)
        self._send_reject(delivery_tag, requeue)

    def flush(self) -> None:
        """Send the held acks: one multiple ack up to the newest below every message still held, and the
        rest (newer than a held one) one by one."""
        if not self.pending:
            return
        pending, self.pending = self.pending, set()
        self.outstanding -= pending
        oldest_held = min(self.outstanding, default=None)
        below = [tag for tag in pending if oldest_held is None or tag < oldest_held]
        if below:
            self._send_ack(max(below), multiple=True)
        for tag in sorted(pending.difference(below)):
            self._send_ack(tag, multiple=False)
