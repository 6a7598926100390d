"""The inline pool's time limits and hooks, on this process's main thread (no broker)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from taskqueue.pool import InlinePool


@pytest.fixture
def pool() -> Iterator[InlinePool]:
    previous = signal.getsignal(signal.SIGALRM)
    started = InlinePool()
    started.start()
    yield started
    started.stop()
    signal.signal(signal.SIGALRM, previous)


def stubborn_sleep(seconds: float) -> None:
    """Sleeps through the soft limit, as a task that catches it would."""
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        time.sleep(seconds)


def test_the_soft_limit_raises_in_the_task(pool: InlinePool) -> None:
    started = time.monotonic()
    with pytest.raises(SoftTimeLimitExceeded):
        pool.apply_async(time.sleep, (5,), soft_timeout=0.2, timeout=1.0)
    assert 0.2 <= time.monotonic() - started < 0.9
    assert pool.current is None


def test_the_hard_limit_raises_in_a_task_that_caught_the_soft_one(pool: InlinePool) -> None:
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded):
        pool.apply_async(stubborn_sleep, (5,), soft_timeout=0.2, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 1.5


def test_a_hard_limit_alone_raises_at_the_hard_limit(pool: InlinePool) -> None:
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded):
        pool.apply_async(time.sleep, (5,), timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 1.2


def test_no_alarm_outlives_a_task_that_finished_in_time(pool: InlinePool) -> None:
    results: list[Any] = []
    pool.apply_async(lambda: 7, callback=results.append, soft_timeout=0.1, timeout=0.2)
    time.sleep(0.4)  # past both limits: an armed timer would raise here
    assert results == [7]
    assert pool.current is None


def test_the_after_task_hooks_run_before_the_result_goes_out(pool: InlinePool) -> None:
    order: list[str] = []
    pool.after_task.append(lambda: order.append("hook"))
    pool.apply_async(lambda: order.append("task"), callback=lambda _: order.append("callback"))
    assert order == ["task", "hook", "callback"]


def test_the_running_task_is_exposed_while_it_runs(pool: InlinePool) -> None:
    seen: list[Any] = []

    def task() -> None:
        current = pool.current
        assert current is not None
        seen.append((current.task_id, current.soft_limit, current.hard_limit))

    pool.apply_async(task, callback=lambda _: None, soft_timeout=240, timeout=300, correlation_id="abc")
    assert seen == [("abc", 240, 300)]
