"""``taskqueue beat``: celery beat, the periodic scheduler, sending the ``BEAT_SCHEDULE`` tasks on time.

A singleton: two beats send every task twice, so the chart runs at most one replica (``Recreate``).

Schedule: ``BEAT_SCHEDULE`` (``taskqueue.schedule``; default ``add`` every 5 s, the original's producer).
State: Celery's ``PersistentScheduler`` keeps each entry's last run in ``BEAT_SCHEDULE_FILE`` (a shelve
file), so a restarted beat neither repeats nor skips a crontab run when the file survives (a PVC); entries
no longer configured are dropped from it at start.

Health: the scheduler loop itself refreshes ``BEAT_HEALTH_FILE`` (``taskqueue.heartbeat``) at least every
``HEALTH_INTERVAL`` (the loop never sleeps longer), also while it waits for the broker, and never from a
thread of its own: a wedged loop leaves a stale file for ``taskqueue health beat``, with no broker round
trip. States: ``starting``, ``scheduling`` (connected; its last send succeeded), ``broker-unavailable``
(cannot connect, or a send failed after its retries: logged in one line, and beat goes on) and
``stopped``. Beat sends with ``ignore_result``: nobody reads what it sends back. On shutdown it saves the
state and leaves the broker connection to the process exit (no close handshake to wait for).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from typing import Any

from celery.beat import PersistentScheduler
from celery.schedules import crontab

from taskqueue.app import create_app
from taskqueue.config import Settings
from taskqueue.heartbeat import BROKER_UNAVAILABLE, SCHEDULING, STARTING, STOPPED, ThrottledHeartbeat
from taskqueue.schedule import CRONTAB_FIELDS, ScheduleEntry

logger = logging.getLogger("taskqueue.beat")
#: Celery's own scheduler logger: its "Sending due task" lines keep their usual form.
celery_logger = logging.getLogger("celery.beat")


def celery_schedule(entries: tuple[ScheduleEntry, ...]) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule`` for ``entries``."""
    schedule: dict[str, dict[str, Any]] = {}
    for entry in entries:
        when: float | crontab
        if entry.every is not None:
            when = entry.every
        else:
            assert entry.crontab is not None  # parse_schedule gives every entry one of the two
            when = crontab(**dict(zip(CRONTAB_FIELDS, entry.crontab.split(), strict=True)))
        # Nobody reads what beat sends back: no result to publish (with rpc:// it would pile up in beat's
        # reply queue, which beat never consumes).
        options: dict[str, Any] = {"ignore_result": True}
        if entry.queue:
            options["queue"] = entry.queue
        if entry.expires is not None:
            options["expires"] = entry.expires
        schedule[entry.name] = {
            "task": entry.task,
            "schedule": when,
            "args": tuple(entry.args),
            "kwargs": dict(entry.kwargs),
            "options": options,
        }
    return schedule


class TaskqueueScheduler(PersistentScheduler):  # type: ignore[misc]  # Celery is untyped
    """Celery's persistent scheduler, refreshing the heartbeat from its loop.

    ``heartbeat`` is set on the subclass :func:`scheduler_class` makes: Celery builds the scheduler
    itself, from a class."""

    heartbeat: ThrottledHeartbeat
    #: What the log says of each entry at start.
    entries: tuple[str, ...] = ()
    _connected = False

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self.heartbeat.refresh()
        if not self._connected:
            # Connect now, not at the first due entry: readiness then means "connected", whatever the
            # schedule; the wait (heartbeat refreshed all along) happens here.
            self._connected = self.producer is not None
            logger.info("beat: connected to %s; schedule: %s", self.connection.as_uri(),
                        "; ".join(self.entries))
            self.heartbeat.update(SCHEDULING, self._summary())
        interval: float = super().tick(*args, **kwargs)
        return interval

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        # Celery's, but a failed send is one log line, not a stack dump per send during a broker outage.
        celery_logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:  # the next run retries; the heartbeat says broker-unavailable meanwhile
            logger.error("beat: could not send %s (%s): %s", entry.name, entry.task, exc)

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        try:
            result = super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        except Exception as exc:
            # Logged by apply_entry, which moves on to the next run; the probe shows it too.
            problem = f"could not send {entry.name}: {exc.__class__.__name__}"
            self.heartbeat.update(BROKER_UNAVAILABLE, problem)
            raise
        self.heartbeat.update(SCHEDULING, self._summary())
        return result

    def _ensure_connected(self) -> Any:
        def on_error(exc: BaseException, interval: float) -> None:
            logger.error("beat: cannot reach the broker: %s: %s; retrying in %gs",
                         exc.__class__.__name__, exc, interval)
            self.heartbeat.update(BROKER_UNAVAILABLE, f"{exc.__class__.__name__}, retrying")

        return self.connection.ensure_connection(
            # kombu calls ``callback`` about once a second while it retries: the file stays fresh.
            on_error, self.app.conf.broker_connection_max_retries, callback=self.heartbeat.refresh
        )

    def close(self) -> None:
        # Shutting down (Celery calls this from its SIGTERM handler, then again on the way out): save the
        # state, and leave the broker connection to the process exit instead of a close handshake, which a
        # broker that does not answer (restarting, alarmed) would drag on past the grace period.
        self.__dict__.pop("producer", None)
        self.__dict__.pop("connection", None)
        super().close()

    def _summary(self) -> str:
        count = len(self.app.conf.beat_schedule or {})
        return f"{count} entr{'y' if count == 1 else 'ies'}"


def scheduler_class(heartbeat: ThrottledHeartbeat,
                    entries: tuple[ScheduleEntry, ...]) -> type[TaskqueueScheduler]:
    """A :class:`TaskqueueScheduler` bound to ``heartbeat``."""
    described = tuple(entry.describe() for entry in entries)
    return type("TaskqueueScheduler", (TaskqueueScheduler,), {"heartbeat": heartbeat, "entries": described})


def run_beat(settings: Settings) -> int:
    """Run beat until SIGTERM/SIGINT (Celery's handlers save the schedule state first); returns 0, or 2
    when the directory of BEAT_SCHEDULE_FILE cannot be written."""
    state_dir = settings.beat_schedule_file.parent
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(state_dir, os.W_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except OSError as exc:
        # Same form as the configuration errors: one line naming the variable, exit 2.
        print(f"taskqueue: invalid configuration: BEAT_SCHEDULE_FILE: cannot write in {state_dir}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
    entries = settings.beat_schedule
    app.conf.beat_schedule = celery_schedule(entries)
    app.conf.beat_schedule_filename = str(settings.beat_schedule_file)
    # The loop turns at least every HEALTH_INTERVAL, so the heartbeat never goes stale while it waits.
    app.conf.beat_max_loop_interval = settings.health_interval
    heartbeat = ThrottledHeartbeat(settings.beat_health_file, settings.health_interval, logger)
    heartbeat.update(STARTING, "connecting to the broker")
    try:
        beat = app.Beat(
            scheduler_cls=scheduler_class(heartbeat, entries),
            loglevel=settings.log_level.upper(),
            max_interval=settings.health_interval,
            # Its remote control (celery inspect ping) is a broker round trip: the heartbeat is the check.
            remote_control=False,
            quiet=True,
        )
        beat.run()
    finally:
        heartbeat.update(STOPPED, "beat stopped")
    return 0
