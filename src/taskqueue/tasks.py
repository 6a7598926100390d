"""The task of the original example, ``add(x, y)``: the only task a production worker runs.

``from taskqueue.tasks import add; add.delay(2, 3).get()`` works in a fresh interpreter, as the original's
``celery_conf.add`` did: a task of this module resolves its app at each use, to the current app if
``taskqueue.app.create_app`` built it (a worker, a test's client), else to ``taskqueue.app.app``, configured
from the environment. Celery's ``shared_task`` alone would use Celery's unconfigured fallback app there
(broker localhost, a direct exchange ``celery``: PRECONDITION_FAILED against the topic exchange of ours).

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
from collections.abc import Callable
from typing import Any

from celery import Celery, shared_task
from celery._state import get_current_app
from celery.local import Proxy

Number = int | float


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


def task_app() -> Celery:
    """The app the tasks of this module send and run with: the current app if ``create_app`` built it,
    else ``taskqueue.app.app`` (built from the environment on first use, and made current)."""
    # Imported here, not at the top: taskqueue.app imports this module (in create_app) to register the
    # tasks, so a module-level import would be a cycle. By a task's first use both modules are loaded.
    import taskqueue.app as app_module

    current = get_current_app()
    return current if current.main == app_module.APP_NAME else app_module.app


def task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``shared_task`` that falls back to the configured app instead of Celery's unconfigured one."""

    def register(fun: Callable[..., Any]) -> Any:
        # Registers ``fun`` on every app, existing and future (each create_app, the worker's); its proxy
        # is dropped for one that resolves through task_app().
        shared_task(name=name, **options)(fun)
        return Proxy(lambda: task_app().tasks[name])

    return register


@task(name="taskqueue.tasks.add", throws=(InvalidArgumentError,))
def add(x: Number, y: Number) -> Number:
    """Return ``x + y``."""
    return check_number("x", x) + check_number("y", y)
