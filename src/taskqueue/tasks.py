"""The tasks: ``add(x, y)`` of the original example, and ``sleep`` for observing in-flight work.

Arguments arrive as JSON from anyone who can publish to the queue, so they are checked. Accepted: ``int``
and finite ``float``. Refused, with :class:`InvalidArgumentError` naming the argument and its type:
strings (even ``"1"``: no silent coercion), ``None``, ``bool`` (``True + 1 == 2`` is a bug, not a sum),
containers; and NaN/±infinity (not valid JSON numbers, and no meaningful sum). The failure is declared
"expected" (``throws``): it is logged in one line without a traceback, shows as FAILURE with the message in
the result and in Flower, is acknowledged (never retried: the same arguments fail again), and the worker
keeps serving.
"""

from __future__ import annotations

import math
import time

from celery import shared_task

Number = int | float

#: Longest a ``sleep`` task may ask for; the task time limits apply as well.
MAX_SLEEP_SECONDS = 3600.0


class InvalidArgumentError(TypeError):
    """A task argument of the wrong type or value: the task fails, nothing is retried."""


def check_number(name: str, value: object) -> Number:
    """Return ``value`` if it is an int or a finite float, else raise InvalidArgumentError naming it."""
    # bool is a subclass of int: test it first.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(
            f"argument {name!r} must be a number (int or float), got {type(value).__name__} {value!r:.80}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"argument {name!r} must be a finite number, got {value!r}")
    return value


@shared_task(name="taskqueue.tasks.add", throws=(InvalidArgumentError,))  # type: ignore[untyped-decorator]
def add(x: Number, y: Number) -> Number:
    """Return ``x + y``."""
    return check_number("x", x) + check_number("y", y)


@shared_task(name="taskqueue.tasks.sleep", throws=(InvalidArgumentError,))  # type: ignore[untyped-decorator]
def sleep(seconds: Number) -> Number:
    """Sleep ``seconds`` (0 to 3600) and return them: a stand-in for a long task in tests and demos."""
    value = check_number("seconds", seconds)
    if not 0 <= value <= MAX_SLEEP_SECONDS:
        raise InvalidArgumentError(
            f"argument 'seconds' must be between 0 and {MAX_SLEEP_SECONDS:g}, got {value!r}"
        )
    time.sleep(value)
    return value
