"""Tasks for tests and benchmarks only: production workers never register them.

A worker registers them when its environment says so (:func:`with_test_tasks`: WORKER_TASK_MODULES names
this module, PYTHONPATH lets it import the ``tests`` package); clients send them by name (``SLEEP_TASK``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from taskqueue.tasks import InvalidArgumentError, Number, check_number

#: Celery name of ``sleep`` (its import path).
SLEEP_TASK = f"{__name__}.sleep"

#: Celery names of the sleeps that ignore their soft time limit, and both limits.
STUBBORN_SLEEP_TASK = f"{__name__}.stubborn_sleep"
UNSTOPPABLE_SLEEP_TASK = f"{__name__}.unstoppable_sleep"

#: Longest a ``sleep`` task may ask for; the task time limits apply as well.
MAX_SLEEP_SECONDS = 3600.0

#: The directory holding the ``tests`` package: what a worker needs on its path to import this module.
REPO_ROOT = Path(__file__).resolve().parents[2]


@shared_task(name=SLEEP_TASK, throws=(InvalidArgumentError,))  # type: ignore[untyped-decorator]
def sleep(seconds: Number) -> Number:
    """Sleep ``seconds`` (0 to 3600) and return them: a stand-in for a long task, to observe in-flight
    work (shutdown, redelivery, poison tasks)."""
    value = check_number("seconds", seconds)
    if not 0 <= value <= MAX_SLEEP_SECONDS:
        raise InvalidArgumentError(
            f"argument 'seconds' must be between 0 and {MAX_SLEEP_SECONDS:g}, got {value!r}"
        )
    time.sleep(value)
    return value


def _sleep_through(seconds: Number, ignored: tuple[type[Exception], ...]) -> Number:
    value = check_number("seconds", seconds)
    deadline = time.monotonic() + min(max(float(value), 0.0), MAX_SLEEP_SECONDS)
    while (left := deadline - time.monotonic()) > 0:
        try:
            time.sleep(left)
        except ignored:
            continue
    return value


@shared_task(name=STUBBORN_SLEEP_TASK)  # type: ignore[untyped-decorator]
def stubborn_sleep(seconds: Number) -> Number:
    """Sleep ``seconds`` through the soft time limit: only the hard one stops it."""
    return _sleep_through(seconds, (SoftTimeLimitExceeded,))


@shared_task(name=UNSTOPPABLE_SLEEP_TASK)  # type: ignore[untyped-decorator]
def unstoppable_sleep(seconds: Number) -> Number:
    """Sleep ``seconds`` through both time limits: a task that catches what should stop it."""
    return _sleep_through(seconds, (SoftTimeLimitExceeded, TimeLimitExceeded))


def with_test_tasks(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a ``taskqueue worker`` that also registers the tasks of this module."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return {**env, "WORKER_TASK_MODULES": __name__, "PYTHONPATH": path}
