"""Waiting for a condition, bounded in time: the one polling loop of the tests and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds,
    with ``detail()`` (say, the log of the process waited for) so that a CI failure explains itself.

    Bounded in time by construction, so a test never hangs on a service that does not come up.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    message = f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})"
    if detail is not None:
        message += f"\n{detail()}"
    raise AssertionError(message)
