"""``taskqueue produce``: dispatch ``add`` with random integers at a steady pace (run_tasks.py).

Delivery: publisher confirms are on, so a publish returns only once the broker has taken the message. A
publish that still fails after its retry budget (broker down) is logged with its task id and arguments and
counted as failed (never dropped silently); the producer then backs off exponentially (capped) and keeps
going, so it rides out a broker outage without a crash loop. SIGTERM/SIGINT stop it cleanly with a
one-line summary.

Health: the main loop refreshes a heartbeat file (``PRODUCER_HEALTH_FILE``, the worker's mechanism of
``taskqueue.heartbeat``) at least every ``HEALTH_INTERVAL``: after each publish, while it waits between two
dispatches (however long ``--interval``), while it backs off, and during the publish's own reconnection
retries. Never from a thread of its own: a loop stuck in a publish must leave a stale file for
``taskqueue health producer`` to catch. States: ``starting``, ``publishing`` (last publish confirmed),
``broker-unavailable`` (publishes failing, backing off), ``broker-blocked`` (RabbitMQ holds publishes
back during a resource alarm; each publish waits at most PUBLISH_CONFIRM_TIMEOUT for its confirm) and
``stopped`` on exit.
"""

from __future__ import annotations

import logging
import random
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from taskqueue.app import ADD_TASK, create_app, log_blocked
from taskqueue.config import Settings
from taskqueue.heartbeat import (
    BROKER_BLOCKED,
    BROKER_UNAVAILABLE,
    PUBLISHING,
    STARTING,
    STOPPED,
    ThrottledHeartbeat,
)

logger = logging.getLogger("taskqueue.producer")

#: Per-publish retry budget (kombu): reconnect up to 3 times, 0.5 s then +1 s each, at most 2 s apart.
PUBLISH_RETRY_POLICY: dict[str, float] = {
    "max_retries": 3,
    "interval_start": 0.5,
    "interval_step": 1.0,
    "interval_max": 2.0,
}
#: Seconds the broker has to confirm one publish. Without a bound, a publish to a broker that blocks
#: publishing (resource alarm) waits for ever and the probe restarts a producer that is only held back.
#: An unconfirmed publish is retried (PUBLISH_RETRY_POLICY), then reported as failed: at-least-once, as the
#: broker may still take the first copy when the alarm clears (``add`` is idempotent).
PUBLISH_CONFIRM_TIMEOUT = 5.0
#: Random operands, like the original.
OPERAND_RANGE = (0, 100)


@dataclass
class Backoff:
    """Exponential backoff after failed publishes: initial, initial*factor, ... capped; reset on success."""

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    _current: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.cap and self.factor >= 1):
            raise ValueError("backoff needs 0 < initial <= cap and factor >= 1")
        self._current = self.initial

    def next_delay(self) -> float:
        """The pause after one more failure."""
        delay = self._current
        self._current = min(self.cap, self._current * self.factor)
        return delay

    def reset(self) -> None:
        self._current = self.initial


@dataclass
class Summary:
    sent: int = 0
    failed: int = 0

    def line(self, reason: str) -> str:
        return f"producer stopped ({reason}): sent {self.sent}, failed {self.failed}"


def interval_from(interval: float | None, rate: float | None, default: float) -> float:
    """Seconds between dispatches: ``rate`` (tasks/s) and ``interval`` exclude each other."""
    if interval is not None and rate is not None:
        raise ValueError("--interval and --rate are mutually exclusive (--rate R means --interval 1/R)")
    if rate is not None:
        if rate <= 0:
            raise ValueError("--rate must be > 0")
        return 1.0 / rate
    if interval is not None:
        if interval <= 0:
            raise ValueError("--interval must be > 0")
        return interval
    return default


class ProducerHeartbeat(ThrottledHeartbeat):
    """The producer's heartbeat file, written from the main loop (a bulk run at 1000 tasks/s does not
    rewrite the file per task), also while it waits between two dispatches."""

    def __init__(self, path: Path, interval: float, queues: list[str]) -> None:
        super().__init__(path, interval, logger, queues)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``stop``, refreshing the file each time it is due; True if stopped.

        Bounded: each turn returns, writes (which moves the next refresh ``interval`` ahead) or waits a
        positive time towards a fixed deadline."""
        deadline = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if now >= deadline:
                return stop.is_set()
            due = self._written_at + self.interval
            if now >= due:
                self.beat()
            elif stop.wait(min(deadline, due) - now):
                return True


def _safe(exc: BaseException, settings: Settings) -> str:
    """The error as text, with the broker password masked should a library have put it in there."""
    text = f"{exc.__class__.__name__}: {exc}"
    if settings.rabbitmq_password is not None:
        secret = settings.rabbitmq_password.get_secret_value()
        if secret:
            text = text.replace(secret, "***")
    if settings.broker_url is not None:
        text = text.replace(settings.broker, settings.broker_display)
    return text


class StopRequested(Exception):
    """Raised from kombu's retry callback to abandon a publish's retries once SIGTERM/SIGINT arrived."""


class _StopFlag:
    """Set by SIGTERM/SIGINT; waiting on it is interruptible."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.reason = signal.Signals(signum).name
        self.event.set()


def run_producer(
    settings: Settings,
    *,
    interval: float | None = None,
    count: int | None = None,
    seed: int | None = None,
    idle_after_count: bool = False,
) -> int:
    """Publish ``add`` every ``interval`` seconds (default: PRODUCER_RATE or PRODUCER_INTERVAL) until
    stopped or ``count`` tasks have been attempted; with ``idle_after_count``, then wait (heartbeat kept
    fresh, in the state of the last publish) until stopped. Returns 0, or 1 when a ``count`` run could not
    publish some of them."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="[%(asctime)s: %(levelname)s/producer] %(message)s",
        stream=sys.stderr,
    )
    period = settings.producer_period if interval is None else interval
    if period <= 0 or (count is not None and count < 1):
        raise ValueError("interval must be > 0 and count >= 1")
    app = create_app(settings)
    stop = _StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    rng = random.Random(seed)
    backoff = Backoff()
    summary = Summary()
    # One line per task up to 10 tasks/s; bulk runs log each task at DEBUG and progress every ~10 s.
    chatty = period >= 0.1
    progress_every = max(1, round(10 / period))
    heartbeat = ProducerHeartbeat(
        settings.producer_health_file, settings.health_interval, [settings.queue_name]
    )
    heartbeat.update(STARTING, "no publish yet")

    def blocked(reason: str) -> None:
        # py-amqp calls this from inside a publish (it reads pending frames first): still the main loop.
        log_blocked(reason)
        heartbeat.update(BROKER_BLOCKED, f"RabbitMQ blocks publishing: {reason}")

    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        # Publisher confirms: a publish returns once the broker has the message, or raises; never lost
        # silently.
        "confirm_publish": True,
        "on_blocked": blocked,
        # Its only blocking reads wait for a confirm or a close-ok: bounded like the confirm, so that a
        # stop during a resource alarm ends within Kubernetes' default 30 s grace period.
        "read_timeout": PUBLISH_CONFIRM_TIMEOUT,
    }

    def reconnecting(exc: BaseException, interval: float) -> None:
        # kombu calls this from inside a publish at each failed reconnection: still the main loop.
        if stop.event.is_set():
            raise StopRequested(f"{stop.reason} during a failing publish")  # no more retries: stop now
        if heartbeat.state == BROKER_BLOCKED and isinstance(exc, TimeoutError):
            heartbeat.beat()  # still blocked: the confirm timed out, as it does while the alarm lasts
        else:
            heartbeat.update(BROKER_UNAVAILABLE, f"reconnecting after {exc.__class__.__name__}")

    retry_policy: dict[str, Any] = {**PUBLISH_RETRY_POLICY, "errback": reconnecting}
    logger.info(
        "taskqueue producer: broker %s, queue %s, every %gs%s, heartbeat %s",
        settings.broker_display, settings.queue_name, period, f", {count} tasks" if count else "",
        settings.producer_health_file,
    )
    next_at = time.monotonic()
    try:
        while count is None or summary.sent + summary.failed < count:
            if heartbeat.wait(stop.event, max(0.0, next_at - time.monotonic())):
                break
            x, y = rng.randint(*OPERAND_RANGE), rng.randint(*OPERAND_RANGE)
            if _publish(app, settings, x, y, summary, chatty, retry_policy):
                if heartbeat.state == BROKER_BLOCKED:
                    logger.info("publishing again: the broker takes messages")
                heartbeat.update(PUBLISHING)
                backoff.reset()
                next_at += period
                if not chatty and summary.sent % progress_every == 0:
                    logger.info("progress: sent %d, failed %d", summary.sent, summary.failed)
            else:
                pause = backoff.next_delay()
                if heartbeat.state == BROKER_BLOCKED:  # a blocked broker answers: that is the better reason
                    cause = "broker blocks publishing"
                else:
                    heartbeat.update(BROKER_UNAVAILABLE, f"{summary.failed} publish(es) failed, backing off")
                    cause = "broker unavailable"
                logger.warning("%s: next attempt in %.1fs", cause, pause)
                if heartbeat.wait(stop.event, pause):
                    break
                next_at = time.monotonic()  # after an outage, resume the pace from now: no burst
        if idle_after_count and not stop.event.is_set():
            # The heartbeat keeps the state of the last publish (ready if it was confirmed) and stays fresh.
            logger.info("count reached: sent %d, failed %d; idle until stopped", summary.sent, summary.failed)
            done = f"count reached (sent {summary.sent}, failed {summary.failed}), idle"
            heartbeat.update(heartbeat.state, done)
            while not heartbeat.wait(stop.event, 3600.0):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reason = stop.reason or ("count reached" if count else "stopped")
        blocked_at_exit = heartbeat.state == BROKER_BLOCKED
        # Whatever the way out, the probe must not find a "publishing" heartbeat of a finished producer.
        heartbeat.update(STOPPED, f"producer exited ({reason})")
        logger.info(summary.line(reason))
        if blocked_at_exit and stop.event.is_set():
            # A blocked broker answers no close handshake: leave the socket to the process exit.
            logger.info("not closing the broker connection gracefully: the broker blocks it")
        else:
            app.close()
    return 1 if count is not None and summary.failed else 0


def _timed_out(exc: BaseException | None) -> bool:
    """Whether ``exc`` or what it wraps (kombu re-raises as OperationalError) is a timeout."""
    while exc is not None:
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _publish(
    app: Any, settings: Settings, x: int, y: int, summary: Summary, chatty: bool,
    retry_policy: dict[str, Any] | None = None,
) -> bool:
    task_id = str(uuid.uuid4())  # ours, so a failed publish can be reported by id too
    try:
        app.send_task(
            ADD_TASK,
            args=(x, y),
            task_id=task_id,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY if retry_policy is None else retry_policy,
            confirm_timeout=PUBLISH_CONFIRM_TIMEOUT,
            # Nobody reads the producer's results: don't make the worker publish them or the broker keep them.
            ignore_result=True,
        )
    except Exception as exc:  # any publish failure is counted and reported, never fatal
        summary.failed += 1
        # A confirm that timed out leaves the message's fate to the broker: say so rather than "lost".
        maybe = " (unconfirmed: the broker may still deliver it)" if _timed_out(exc) else ""
        logger.error(
            "could not publish add(%d, %d) id %s after retries: %s%s",
            x, y, task_id, _safe(exc, settings), maybe,
        )
        return False
    summary.sent += 1
    logger.log(logging.INFO if chatty else logging.DEBUG, "sent add(%d, %d) id %s", x, y, task_id)
    return True
