"""The worker's Consumer (Celery setting ``worker_consumer``): nothing it cannot run is lost.

Stock Celery acknowledges, and so drops, a message it cannot decode (``on_decode_error``), after logging
its body. This one rejects it without requeue instead, so RabbitMQ dead-letters it to the work queue's
``<queue>.dead-letter`` (``taskqueue.app.queue_arguments``), and logs one line without the body (a
message body can carry task arguments: never dump them into logs).

The other ways a message cannot run already end in a reject without requeue in stock Celery, hence in the
dead-letter queue as well: an unknown task name (``on_unknown_task``), an invalid or disallowed message
(``on_invalid_task``) and a message of unknown format (``on_unknown_message``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

logger = logging.getLogger("taskqueue.consumer")


def describe_message(message: Any) -> str:
    """Content type, encoding, size, routing key and task name of ``message``: never its body."""
    body = message.body
    size = len(body) if isinstance(body, bytes | str) else 0
    headers = message.headers if isinstance(message.headers, dict) else {}
    routing_key = (message.delivery_info or {}).get("routing_key", "")
    return (
        f"content type {message.content_type!r}, encoding {message.content_encoding!r}, {size} bytes, "
        f"routing key {routing_key!r}, task {headers.get('task', '-')!r}"
    )


class Consumer(CeleryConsumer):  # type: ignore[misc]
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        # Decoder messages name a position or a content type, not content; capped all the same.
        logger.error(
            "undecodable message rejected to the dead-letter queue: %s: %.200s (%s)",
            exc.__class__.__name__, exc, describe_message(message),
        )
        # requeue=False: RabbitMQ dead-letters it; a requeue would loop, an ack would lose it.
        message.reject_log_error(logger, self.connection_errors, requeue=False)
