"""The Celery app, built from :class:`~taskqueue.config.Settings` with production defaults.

Building the app never connects anywhere: Celery connects lazily on first publish or at worker start, so
``create_app`` works (and the module imports) without a reachable broker.

``celery -A taskqueue.app ...`` finds the module attribute ``app``: it is created on first access from the
process environment (PEP 562 ``__getattr__``), so importing this module reads no configuration.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from taskqueue.config import ConfigError, Settings, load_settings

#: Celery name of the one task of the example (also its import path). The only task a production worker
#: registers: tests and users add theirs with WORKER_TASK_MODULES.
ADD_TASK = "taskqueue.tasks.add"
#: The ``main`` name of every app ``create_app`` builds: how ``taskqueue.tasks`` tells them from Celery's
#: unconfigured fallback app.
APP_NAME = "taskqueue"


#: The dead-letter queue of work queue ``q`` is ``q.dead-letter`` (QUEUE_NAME is capped to leave room).
DEAD_LETTER_SUFFIX = ".dead-letter"


def dead_letter_queue_name(queue_name: str) -> str:
    """Where the messages of ``queue_name`` nobody can run end up: ``<queue_name>.dead-letter``."""
    return f"{queue_name}{DEAD_LETTER_SUFFIX}"


class DeadLetteredQueue(Queue):
    """A work queue that declares its dead-letter queue first, on the same channel.

    Dead-lettering to a queue that does not exist drops the message silently, so whoever declares the
    work queue (the worker at every (re)connect, a producer before its first publish) declares the
    dead-letter queue too. ``attrs`` carries it through kombu's copies (every ``bind`` copies the queue).
    """

    attrs = (*Queue.attrs, ("dead_letter_queue", None))  # type: ignore[assignment]  # one more item
    dead_letter_queue: Queue | None
    no_declare: bool | None
    queue_arguments: dict[str, Any] | None

    def declare(self, nowait: bool = False, channel: Any = None) -> str:
        if self.dead_letter_queue is not None and not self.no_declare:
            self.dead_letter_queue.declare(  # type: ignore[no-untyped-call]
                nowait=nowait, channel=channel or self.channel
            )
        return str(super().declare(nowait=nowait, channel=channel))  # type: ignore[no-untyped-call]


def queue_arguments(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(work queue arguments, dead-letter queue arguments).

    Every client must declare the work queue with exactly these arguments (RabbitMQ refuses a redeclare
    with other ones: PRECONDITION_FAILED, inequivalent arg), so they are built here only. Changing them
    for an existing queue means deleting it first (or setting them by a RabbitMQ policy instead).
    """
    work: dict[str, Any] = {
        # Rejected-without-requeue messages (undecodable, unknown task, invalid; poison past the delivery
        # limit) go to <queue>.dead-letter instead of being dropped. Via the default exchange "": it routes
        # by queue name, so there is no extra exchange to declare, bind, secure or clean up.
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue_name(settings.queue_name),
    }
    dead_letter: dict[str, Any] = {}
    if settings.queue_type == "quorum":
        # Replicated and durable; caveats: no per-message priority, no global QoS (Celery detects the
        # quorum queue and switches to per-consumer prefetch), countdown/ETA go via native delayed delivery.
        work["x-queue-type"] = "quorum"
        # Poison tasks: a message returned QUEUE_DELIVERY_LIMIT times (its task killed the pool process
        # each time: Celery rejects it with requeue) is dead-lettered instead of redelivered for ever.
        # Quorum queues only: classic queues have no delivery count, so there a poison task loops. Quorum
        # dead-lettering is at-most-once by default (3.10+): a message is lost only if the dead-letter
        # queue is unavailable at that moment; at-least-once would need x-overflow=reject-publish.
        work["x-delivery-limit"] = settings.queue_delivery_limit
        # Same type for the dead-letter queue: it is as durable and replicated as the work queue.
        dead_letter["x-queue-type"] = "quorum"
    return work, dead_letter


def task_queue(settings: Settings) -> DeadLetteredQueue:
    """The durable work queue ``add`` is routed to and the worker consumes, with its dead-letter queue."""
    work, dead_letter = queue_arguments(settings)
    dead_letter_queue = Queue(  # type: ignore[no-untyped-call]
        dead_letter_queue_name(settings.queue_name),
        exchange=None,  # reached through the default exchange only: no binding
        durable=True,
        queue_arguments=dead_letter or None,
    )
    # A topic exchange named after the queue: native delayed delivery (countdown/ETA on quorum queues)
    # binds only to topic exchanges; with a direct one ETA tasks would block the worker.
    return DeadLetteredQueue(
        settings.queue_name,
        Exchange(settings.queue_name, type="topic", durable=True),  # type: ignore[no-untyped-call]
        routing_key=settings.queue_name,
        durable=True,
        queue_arguments=work,
        dead_letter_queue=dead_letter_queue,
    )


def remove_task_queue(connection: Any, queue_name: str) -> None:
    """Delete what ``task_queue`` declares (the queue, its dead-letter queue, its exchange), messages
    included: for throw-away queues of tests and benchmarks. Stop its consumers first, or a worker that
    sees its queue go declares it again when it reconnects. What does not exist is skipped."""
    # Deleting a queue that does not exist closes the channel (404): a fresh channel for each step.
    for queue in (queue_name, dead_letter_queue_name(queue_name)):
        with contextlib.suppress(Exception):
            connection.channel().queue_delete(queue)
    with contextlib.suppress(Exception):
        connection.channel().exchange_delete(queue_name)


#: Seconds a blocking wait for a broker reply (declare-ok, confirm, close-ok) may last before it counts as a
#: connection error: without it, stopping during a resource alarm hangs until the kubelet's SIGKILL. The
#: worker's event loop reads without blocking, so an idle connection is not affected.
BROKER_REPLY_TIMEOUT = 10.0

broker_logger = logging.getLogger("taskqueue.broker")


def log_blocked(reason: str) -> None:
    """py-amqp calls this when RabbitMQ sends ``connection.blocked``: a resource alarm (low disk or memory)
    holds back every publish of the connection until it clears. Said once, loudly: otherwise a process
    whose publishes hang just looks wedged."""
    broker_logger.warning(
        "RabbitMQ blocked publishing on this connection: %s (a broker resource alarm; publishes wait "
        "until it clears: free disk or memory on the broker)", reason
    )


def log_unblocked() -> None:
    broker_logger.warning("RabbitMQ unblocked this connection: publishing resumes")


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings (lower-case names of Celery 4+), each with the reason it is set."""
    queue = task_queue(settings)
    return {
        # Broker and results.
        "broker_url": settings.broker,
        "result_backend": settings.result_backend,
        # Results nobody fetches must not pile up (also bounds rpc:// reply queues via x-expires).
        "result_expires": 3600,
        # A broker that is still starting (pods start in any order) is retried, not fatal.
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        # Retry for ever: a broker restart can take minutes; the health probe, not a crash loop, decides.
        "broker_connection_max_retries": None,
        "broker_connection_timeout": settings.broker_connection_timeout,
        # AMQP heartbeats detect a silently dead connection in ~1 min instead of the 2x120 s default.
        "broker_heartbeat": settings.worker_broker_heartbeat,
        # py-amqp passes these to the connection: a resource alarm on the broker is logged, not silent, and
        # no wait for a broker reply is endless (a blocked broker never sends the close-ok of a shutdown).
        "broker_transport_options": {
            "on_blocked": log_blocked,
            "on_unblocked": log_unblocked,
            "read_timeout": BROKER_REPLY_TIMEOUT,
        },
        # Reliability: ack after the task ran, and requeue when the worker process dies under it, so a
        # killed worker's task is redelivered, not lost (at-least-once; ``add`` is idempotent).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # The task's ack cannot reach the broker over a lost connection: cancel and let it redeliver.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Prefetch per process from the settings (4 by default; 1 for long tasks: see Settings).
        "worker_prefetch_multiplier": settings.worker_prefetch_multiplier,
        # Quorum queues refuse global QoS: let Celery detect them and use per-consumer prefetch.
        "worker_detect_quorum_queues": True,
        # JSON only: never unpickle what arrives from the network.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Remote control is optional: the health check never uses it (off: no pidbox queue per worker).
        "worker_enable_remote_control": settings.worker_remote_control,
        # Events on, so Flower sees workers and every task (sent, received, started, succeeded/failed).
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # A runaway task is interrupted (soft: SoftTimeLimitExceeded) then killed (hard).
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": settings.task_soft_time_limit,
        # Routing: the configured durable queue is the default, and ``add`` goes there explicitly.
        "task_default_queue": settings.queue_name,
        "task_default_exchange": settings.queue_name,
        "task_default_exchange_type": "topic",
        "task_default_routing_key": settings.queue_name,
        "task_default_queue_type": settings.queue_type,
        "task_queues": (queue,),
        "task_routes": {ADD_TASK: {"queue": settings.queue_name}},
        # The worker imports these at start (also under ``celery -A taskqueue.app worker``); ``taskqueue
        # worker`` imports them first itself, to name WORKER_TASK_MODULES if one cannot be imported.
        "include": list(settings.worker_task_modules),
        # Every message is checked first: what the worker cannot run (undecodable, malformed, unknown task)
        # is rejected to the dead-letter queue in one log line, instead of dropped or stopping the worker.
        "worker_consumer": "taskqueue.consumer:Consumer",
        # Logs belong to the orchestrator: keep stdout/stderr as they are, no colours in files.
        "worker_hijack_root_logger": True,
        "worker_redirect_stdouts": False,
        "worker_log_color": False,
        # UTC everywhere: timestamps compare across pods.
        "enable_utc": True,
        "timezone": "UTC",
    }


def create_app(settings: Settings, *, set_as_current: bool = True) -> Celery:
    """A configured Celery app with the ``add`` task registered; connects to nothing."""
    app = Celery(APP_NAME, set_as_current=set_as_current)
    app.config_from_object(celery_config(settings))
    # The settings travel with the app: the worker's bootsteps (built by Celery, without arguments) read
    # them through settings_of. An attribute, not app.conf: Celery would report and serialize its conf.
    app.taskqueue_settings = settings
    # Registers the tasks of taskqueue.tasks on this app (each is a shared task: on every app).
    import taskqueue.tasks  # noqa: F401

    return app


def settings_of(app: Celery) -> Settings:
    """The settings ``app`` was created with by :func:`create_app`."""
    settings = getattr(app, "taskqueue_settings", None)
    if settings is None:
        raise LookupError(f"app {app.main!r} carries no settings: build it with taskqueue.app.create_app")
    return settings  # type: ignore[no-any-return]


def import_task_modules(settings: Settings) -> None:
    """Import the WORKER_TASK_MODULES, whose tasks then register on every app; raise ConfigError naming the
    variable and the module that cannot be imported (a worker must not start without tasks it was given)."""
    for name in settings.worker_task_modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a module can fail with anything: each is the same configuration error
            raise ConfigError(
                f"invalid configuration: WORKER_TASK_MODULES: cannot import {name!r}: "
                f"{exc.__class__.__name__}: {exc}"
            ) from exc


_default_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    # ``celery -A taskqueue.app`` looks up ``app``: build it from the environment on first access only.
    global _default_app
    if name == "app":
        if _default_app is None:
            _default_app = create_app(load_settings())
        return _default_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
