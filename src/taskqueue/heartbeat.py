"""Heartbeat files: a small JSON document a process rewrites, the health probe reads. One mechanism for
the worker (``WORKER_HEALTH_FILE``), the producer (``PRODUCER_HEALTH_FILE``) and celery beat
(``BEAT_HEALTH_FILE``), each in its own file.

Standard library only (no Celery, not even logging): the probe imports this module and must start fast.

Worker states: ``consuming`` (connected and consuming every queue: healthy), ``not-consuming`` (connected
but a queue is not consumed: the "zombie"), ``disconnected`` (broker connection lost, reconnecting),
``draining`` (SIGTERM received: finishing the tasks it holds, taking no new ones; alive).
Producer states: ``publishing`` (its last publish was confirmed), ``broker-unavailable`` (publishes fail,
backing off: alive, but not doing its job), ``broker-blocked`` (RabbitMQ holds its publishes back during
a resource alarm, low disk or memory: alive, not doing its job, and a restart would not help). celery
beat (``BEAT_HEALTH_FILE``): ``scheduling`` (connected, its last send succeeded) and
``broker-unavailable`` (cannot reach the broker or a send failed: alive, retrying). All three:
``starting`` and ``stopped``. ``taskqueue.health`` judges them: only a fresh heartbeat from a live process
counts, and which states pass is the check's call.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing only: importing logging would cost the probe a few ms for nothing
    from logging import Logger

CONSUMING = "consuming"
NOT_CONSUMING = "not-consuming"
DISCONNECTED = "disconnected"
DRAINING = "draining"
STARTING = "starting"
STOPPED = "stopped"
PUBLISHING = "publishing"
BROKER_UNAVAILABLE = "broker-unavailable"
BROKER_BLOCKED = "broker-blocked"
SCHEDULING = "scheduling"
STATES = frozenset(
    {CONSUMING, NOT_CONSUMING, DISCONNECTED, DRAINING, STARTING, STOPPED, PUBLISHING, BROKER_UNAVAILABLE,
     BROKER_BLOCKED, SCHEDULING}
)


@dataclass(frozen=True)
class Heartbeat:
    state: str
    pid: int
    hostname: str
    time: float
    detail: str = ""
    queues: list[str] = field(default_factory=list)


class HeartbeatError(ValueError):
    """The heartbeat file exists but is not a heartbeat."""


def write_heartbeat(path: Path, state: str, *, detail: str = "", queues: list[str] | None = None) -> None:
    """Atomically replace ``path`` with a heartbeat for this process (a reader never sees half a file)."""
    beat = Heartbeat(
        state=state,
        pid=os.getpid(),
        hostname=os.uname().nodename,
        time=time.time(),
        detail=detail,
        queues=list(queues or []),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(beat)))
    os.replace(temporary, path)


class HeartbeatWriter:
    """Writes one process's heartbeats to ``path`` without ever raising: a full or read-only disk must not
    kill the worker or the producer. The probe then fails on the stale file; the first failure is logged
    (once until a write succeeds again), so the reason is in the log."""

    def __init__(self, path: Path, logger: Logger) -> None:
        self.path = path
        self._logger = logger
        self._failed = False

    def write(self, state: str, detail: str = "", queues: list[str] | None = None) -> bool:
        """Write one heartbeat; False if it could not be written."""
        try:
            write_heartbeat(self.path, state, detail=detail, queues=queues)
        except OSError as exc:
            if not self._failed:
                self._logger.error("cannot write heartbeat file %s: %s", self.path, exc)
            self._failed = True
            return False
        self._failed = False
        return True


class ThrottledHeartbeat:
    """A heartbeat file written from a process's own loop (the producer's, celery beat's): on a change of
    state, and whenever the last write is ``interval`` old, so a busy loop does not rewrite the file each
    turn. Never from a thread of its own: a wedged loop must leave a stale file for the probe."""

    def __init__(self, path: Path, interval: float, logger: Logger, queues: list[str] | None = None) -> None:
        self._writer = HeartbeatWriter(path, logger)
        self.interval = interval
        self._queues = queues
        self.state = ""
        self.detail = ""
        self._written_at = -math.inf

    def update(self, state: str, detail: str = "") -> None:
        """Record the state; write it if it changed or the file is due for a refresh."""
        changed = (state, detail) != (self.state, self.detail)
        if changed or time.monotonic() >= self._written_at + self.interval:
            self.state, self.detail = state, detail
            self.beat()

    def refresh(self) -> None:
        """Rewrite the current state if due."""
        self.update(self.state, self.detail)

    def beat(self) -> None:
        """Rewrite the file with the current state (a fresh time)."""
        self._written_at = time.monotonic()
        self._writer.write(self.state, self.detail, self._queues)


def read_heartbeat(path: Path) -> Heartbeat | None:
    """The heartbeat in ``path``, None if there is no file, HeartbeatError if it is not a heartbeat."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        beat = Heartbeat(
            state=str(data["state"]),
            pid=int(data["pid"]),
            hostname=str(data["hostname"]),
            time=float(data["time"]),
            detail=str(data.get("detail", "")),
            queues=[str(queue) for queue in data.get("queues", [])],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise HeartbeatError(f"{path} is not a heartbeat file ({exc.__class__.__name__})") from None
    if beat.state not in STATES:
        raise HeartbeatError(f"{path} has an unknown state {beat.state!r}")
    return beat


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its parent's wait() counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    # /proc/<pid>/stat: "pid (comm) S ..."; the state letter follows the last ')'.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}
    return True
