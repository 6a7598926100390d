"""The worker's Consumer (Celery setting ``worker_consumer``): whatever arrives, nothing it cannot run is
lost, and nothing it receives stops it.

Stock Celery acknowledges, and so drops, a message it cannot decode; logs bodies (task arguments) with
tracebacks; and trusts the shape of a message with a known task name: a body that is not the ``[args,
kwargs, embed]`` triple, a missing ``id`` header or a property py-amqp cannot decode raises inside the
consumer, which the worker treats as unrecoverable. It exits, the message goes back to the queue, and the
next worker to take it exits too: one published message stops the whole fleet.

This Consumer checks every message before Celery sees it (``taskqueue.messages``) and rejects, without
requeue, what it cannot run, so RabbitMQ dead-letters it to the work queue's ``<queue>.dead-letter``
(``taskqueue.app.queue_arguments``), with one log line naming what is wrong and never the body: undecodable
(content type, encoding, body, AMQP properties), malformed (headers, body shape), unknown task (the caller
still gets NotRegistered), invalid (Celery's own checks: a bad ``eta``), and anything Celery raises for a
message all the same.

It also batches the task events (Flower's feed) into one message per tenth of a second, and after a lost
broker connection terminates the late-acked tasks in flight without a broker round trip per task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from amqp import serialization as amqp_serialization
from celery import signals
from celery.backends.rpc import RPCBackend
from celery.exceptions import NotRegistered
from celery.utils.objects import Bunch
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer.consumer import TERMINATING_TASK_ON_RESTART_AFTER_A_CONNECTION_LOSS
from celery.worker.state import active_requests
from kombu.serialization import prepare_accept_content

from taskqueue.messages import UNDECODABLE_PROPERTIES, describe_error, message_problem

logger = logging.getLogger("taskqueue.consumer")

#: Seconds task events (received, started, succeeded: Flower's feed) wait in the buffer before one message
#: carries them all. Celery flushes on every turn of the event loop, a publish (a socket write) per one to
#: three events: at a thousand tasks a second, a quarter of the worker's time. A tenth of a second is
#: nothing to a dashboard.
EVENT_FLUSH_INTERVAL = 0.1
#: Events one message carries at most (Celery's default: 24); beyond it the buffer flushes at once.
EVENT_BUFFER_LIMIT = 1000


def describe_message(message: Any) -> str:
    """Content type, encoding, size, routing key and task name of ``message``: never its body."""
    body = getattr(message, "body", None)
    size = len(body) if isinstance(body, bytes | str) else 0
    headers = getattr(message, "headers", None)
    task = headers.get("task", "-") if isinstance(headers, dict) else "-"
    delivery_info = getattr(message, "delivery_info", None)
    routing_key = delivery_info.get("routing_key", "") if isinstance(delivery_info, dict) else ""
    return (
        f"content type {getattr(message, 'content_type', None)!r:.100}, "
        f"encoding {getattr(message, 'content_encoding', None)!r:.100}, {size} bytes, "
        f"routing key {routing_key!r:.300}, task {task!r:.200}"
    )


#: py-amqp's own decoder of the properties of class Basic (every message's).
decode_basic_properties = amqp_serialization.decode_properties_basic


def decode_properties_or_report(buf: Any, offset: int) -> tuple[dict[str, Any], int]:
    """py-amqp's decoder of a message's properties, made total: properties it cannot decode (text that is
    not UTF-8, a header timestamp beyond year 9999) raise from deep in the connection's frame reader, which
    the worker takes for an unrecoverable error. Here such a message gets only a property saying why, and
    the consumer rejects it like any undecodable message."""
    try:
        properties, end = decode_basic_properties(buf, offset)
        return properties, end
    except Exception as exc:  # any failure of the decoder: the message is undecodable, not the connection
        # The frame reader uses the properties only: the offset after them is not needed.
        return {UNDECODABLE_PROPERTIES: f"{exc.__class__.__name__}: {str(exc)[:200]}"}, offset


def guard_property_decoding() -> None:
    """Route py-amqp's decoding of message properties (class Basic) through the total decoder above; it
    looks the decoder up in this table for every message. Idempotent; the worker process only."""
    amqp_serialization.PROPERTY_CLASSES[amqp_serialization.Basic.CLASS_ID] = decode_properties_or_report


class Consumer(CeleryConsumer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        guard_property_decoding()
        super().__init__(*args, **kwargs)
        # The content types the worker accepts (accept_content: JSON only), as MIME types.
        self.accepted_types = frozenset(
            prepare_accept_content(self.app.conf.accept_content)  # type: ignore[no-untyped-call]
        )

    #: The batcher of the late acks (``taskqueue.bootsteps.acks``), set while the task channel is open.
    taskqueue_acks: Any = None
    #: When the scheduled flush of the task events is due (None: none scheduled).
    _event_flush_due: float | None = None

    def on_send_event_buffered(self) -> None:
        """An event entered the buffer: flush within ``EVENT_FLUSH_INTERVAL``, not on the loop's next turn."""
        if not self.hub:
            return
        dispatcher = self.event_dispatcher
        if dispatcher is not None and dispatcher.buffer_limit != EVENT_BUFFER_LIMIT:
            dispatcher.buffer_limit = EVENT_BUFFER_LIMIT
        now = time.monotonic()
        # A due time long past means the timer lost its entry (the consumer restarted): schedule anew.
        if self._event_flush_due is not None and now < self._event_flush_due + 1.0:
            return
        self._event_flush_due = now + EVENT_FLUSH_INTERVAL
        self.timer.call_after(EVENT_FLUSH_INTERVAL, self._flush_buffered_events)

    def _flush_buffered_events(self) -> None:
        self._event_flush_due = None
        self._flush_events()

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        """Terminate the late-acked tasks in flight (they cannot be acked over a lost connection; the broker
        redelivers them), then let Celery reconnect. Celery's own termination also stores a RETRY state per
        task: with the rpc:// backend that is a publish to the lost broker, a connection timeout each (4 s),
        and the event loop stalls for concurrency times that, past the heartbeat's max age. Here the state
        is stored only when the backend is not the broker; the task-cancelled event still goes out."""
        if self.app.conf.worker_cancel_long_running_tasks_on_connection_loss:
            store_retry = not isinstance(self.app.backend, RPCBackend)
            for request in tuple(active_requests):
                if request.task.acks_late and not request.acknowledged:
                    logger.warning(TERMINATING_TASK_ON_RESTART_AFTER_A_CONNECTION_LOSS.strip(), request)
                    try:
                        request.cancel(self.pool, emit_retry=store_retry)
                    except Exception:  # a process already gone: Celery's reconnect goes on regardless
                        logger.warning("failed to terminate %r after the connection loss", request,
                                       exc_info=True)
        # Cancelled requests have left active_requests: Celery's pass over it finds none of them.
        super().on_connection_error_after_connected(exc)

    def reject(self, message: Any, kind: str, reason: str) -> None:
        """Reject ``message`` without requeue (RabbitMQ dead-letters it), with one log line."""
        logger.error("%s rejected to the dead-letter queue: %s (%s)", kind, reason, describe_message(message))
        # requeue=False: RabbitMQ dead-letters it; a requeue would loop, an ack would lose it.
        message.reject_log_error(logger, self.connection_errors, requeue=False)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> None:
            self.take(message, handle)

        return on_task_received

    def take(self, message: Any, handle: Callable[[Any], Any]) -> None:
        """Hand ``message`` to Celery's ``handle`` if it is a task message this worker can run, else reject
        it; whatever Celery still raises for it is logged and the message rejected, never re-raised (the
        worker would stop), except a lost connection (Celery reconnects, RabbitMQ redelivers)."""
        acks = self.taskqueue_acks
        if acks is not None:
            acks.delivered(message.delivery_tag)
        problem = message_problem(message, self.accepted_types)
        if problem is not None:
            self.reject(message, *problem)
            return
        try:
            handle(message)
        except (*self.connection_errors, *self.channel_errors):
            raise
        except Exception as exc:
            # The error's text may quote the message: only at debug level, with the traceback.
            logger.debug("task message failed in the consumer", exc_info=True)
            reason = f"the worker could not take it: {exc.__class__.__name__}"
            if not message.acknowledged:
                self.reject(message, "task message", reason)
            else:
                logger.error("task message failed after it was settled: %s (%s)", reason,
                             describe_message(message))

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self.reject(message, "undecodable message", describe_error(exc))

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self.reject(message, "malformed task message", "unknown message format")
        signals.task_rejected.send(sender=self, message=message, exc=None)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.reject(message, "invalid task message", describe_error(exc))
        signals.task_rejected.send(sender=self, message=message, exc=exc)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        # As Celery's, with one log line and no body; the headers were checked (taskqueue.messages).
        headers, properties = message.headers, message.properties
        task_id, name = headers["id"], headers["task"]
        self.reject(message, "message of an unknown task", "no such task in this worker")
        # The caller waiting for the result learns why: NotRegistered.
        request = Bunch(
            name=name, chord=None, root_id=headers.get("root_id"),
            correlation_id=properties.get("correlation_id"), reply_to=properties.get("reply_to"),
            errbacks=None,
        )
        self.app.backend.mark_as_failure(task_id, NotRegistered(name), request=request)
        if self.event_dispatcher:
            self.event_dispatcher.send("task-failed", uuid=task_id, exception=f"NotRegistered({name!r})")
        signals.task_unknown.send(sender=self, message=message, exc=exc, name=name, id=task_id)
