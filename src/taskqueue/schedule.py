"""celery beat's schedule as configuration: ``BEAT_SCHEDULE``, a JSON list of entries, parsed and checked.

Each entry is an object::

    {"name": "add-every-5s", "task": "taskqueue.tasks.add", "every": 5, "args": [2, 3]}

- ``name`` (required): unique; the key of the entry in beat's schedule state file.
- ``task`` (required): the Celery task name, e.g. ``taskqueue.tasks.add``.
- ``every`` (seconds, > 0) or ``crontab`` (five fields, ``minute hour day-of-month month day-of-week``,
  in UTC): exactly one of them.
- ``args`` (list), ``kwargs`` (object): the task's arguments, JSON values (they travel as JSON).
- ``queue``: send to this queue instead of the task's route (QUEUE_NAME for ``add``).
- ``expires`` (seconds, > 0): a task still queued that long after it was sent is discarded by the worker
  rather than run late (a beat that outlives its workers does not pile up work).

Every problem names the entry (its position and name) and the field. Standard library only, except that a
``crontab`` entry is checked by Celery's own parser (imported then, and only then).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from taskqueue.settings_registry import MODULE_PATH

#: The fields an entry may have.
FIELDS = ("name", "task", "every", "crontab", "args", "kwargs", "queue", "expires")
#: Entry names: what a Kubernetes label value allows, plus ':' (they name entries in logs and the state).
ENTRY_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.:-]{0,126}[A-Za-z0-9])?")
#: Queue names, as QUEUE_NAME allows them.
QUEUE = re.compile(r"[A-Za-z0-9_.:-]{1,243}")
CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


@dataclass(frozen=True)
class ScheduleEntry:
    """One periodic task: every ``every`` seconds or on ``crontab``."""

    name: str
    task: str
    every: float | None = None
    crontab: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    expires: float | None = None

    def describe(self) -> str:
        when = f"every {self.every:g}s" if self.every is not None else f"crontab {self.crontab!r} (UTC)"
        target = f" to queue {self.queue}" if self.queue else ""
        return f"{self.name}: {self.task}{target} {when}"


#: The default schedule: ``add`` every 5 seconds, the original example's producer (run_tasks.py sent
#: add(x, y) every 5 s; beat sends fixed arguments, the same each time).
DEFAULT_SCHEDULE: tuple[ScheduleEntry, ...] = (
    ScheduleEntry(name="add-every-5s", task="taskqueue.tasks.add", every=5.0, args=(2, 3)),
)


class ScheduleError(ValueError):
    """BEAT_SCHEDULE is not a valid schedule; the message names the entry and the field."""


def _positive_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number > 0 and math.isfinite(number) else None


def check_crontab(spec: str) -> str:
    """``spec`` normalised (single spaces) if Celery's crontab accepts it; ValueError saying why not."""
    parts = spec.split()
    if len(parts) != len(CRONTAB_FIELDS):
        raise ValueError(
            f"must have 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    from celery.schedules import crontab  # only when a crontab entry is configured

    try:
        crontab(**dict(zip(CRONTAB_FIELDS, parts, strict=True)))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    return " ".join(parts)


def _entry(index: int, raw: object, seen: set[str]) -> ScheduleEntry:
    if not isinstance(raw, dict):
        raise ScheduleError(f"entry {index} must be an object with name, task and every or crontab")
    name = raw.get("name")
    label = f"entry {index} ({name!r})" if isinstance(name, str) and name else f"entry {index}"

    def bad(field_name: str, problem: str) -> ScheduleError:
        return ScheduleError(f"{label}: {field_name}: {problem}")

    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise bad(unknown[0], f"unknown field (known: {', '.join(FIELDS)})")
    if not isinstance(name, str) or not ENTRY_NAME.fullmatch(name):
        raise bad("name", "required: letters, digits, '-', '_', '.', ':', at most 128 characters")
    if name in seen:
        raise bad("name", "duplicate: each entry needs a name of its own")
    seen.add(name)
    task = raw.get("task")
    if not isinstance(task, str) or not MODULE_PATH.fullmatch(task):
        raise bad("task", "required: a Celery task name such as taskqueue.tasks.add")
    has_every, has_crontab = "every" in raw, "crontab" in raw
    if has_every == has_crontab:
        raise bad("every", "give exactly one of every (seconds) and crontab")
    every = crontab = None
    if has_every:
        every = _positive_number(raw["every"])
        if every is None:
            raise bad("every", f"must be a number of seconds > 0 (got {raw['every']!r})")
    else:
        if not isinstance(raw["crontab"], str):
            raise bad("crontab", f"must be a string such as '*/5 * * * *' (got {raw['crontab']!r})")
        try:
            crontab = check_crontab(raw["crontab"])
        except ValueError as exc:
            raise bad("crontab", f"{exc} (got {raw['crontab']!r})") from None
    args = raw.get("args", [])
    if not isinstance(args, list):
        raise bad("args", f"must be a list (got {args!r})")
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise bad("kwargs", f"must be an object (got {kwargs!r})")
    queue = raw.get("queue")
    if queue is not None and not (isinstance(queue, str) and QUEUE.fullmatch(queue)):
        raise bad("queue", f"must be a queue name (letters, digits, '_', '.', ':', '-') (got {queue!r})")
    expires = raw.get("expires")
    if expires is not None:
        expires = _positive_number(expires)
        if expires is None:
            raise bad("expires", f"must be a number of seconds > 0 (got {raw['expires']!r})")
    return ScheduleEntry(name, task, every, crontab, tuple(args), dict(kwargs), queue, expires)


def parse_schedule(text: str) -> tuple[ScheduleEntry, ...]:
    """The entries of a BEAT_SCHEDULE value; ScheduleError naming the first bad entry and field."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, list):
        raise ScheduleError('must be a JSON list of entries ([{"name": ..., "task": ..., "every": ...}])')
    if not data:
        raise ScheduleError("has no entries: beat would have nothing to send (disable beat instead)")
    seen: set[str] = set()
    return tuple(_entry(index, raw, seen) for index, raw in enumerate(data, start=1))
