"""The default pool runs each task in the worker process itself (``taskqueue.pool``): its time limits hold
as prefork's do, and a task longer than two AMQP heartbeats keeps the worker's broker connection, its
heartbeat file and its Flower heartbeats alive (``taskqueue.bootsteps.guard``)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from taskqueue.app import ADD_TASK
from taskqueue.bootsteps.guard import EXIT_TASK_STUCK, HARD_LIMIT_GRACE
from taskqueue.heartbeat import CONSUMING, STOPPED, read_heartbeat
from tests.support.brokers import queue_depth
from tests.support.events import TaskEvents
from tests.support.processes import Processes
from tests.support.tasks import SLEEP_TASK, STUBBORN_SLEEP_TASK, UNSTOPPABLE_SLEEP_TASK, with_test_tasks
from tests.support.waiting import wait_until
from tests.support.workers import start_worker

pytestmark = pytest.mark.integration

#: Soft and hard time limits of these tests' workers, seconds.
SOFT, HARD = 1, 2
#: AMQP heartbeat of the long-task test: the broker drops a connection silent for two of them.
AMQP_HEARTBEAT = 2
#: The long task: several times two AMQP heartbeats.
LONG_TASK_SECONDS = 12


def limited_worker(processes: Processes, worker_env: dict[str, str]) -> tuple[dict[str, str], Any]:
    """(environment, process) of a worker with the test tasks and the short time limits above."""
    env = with_test_tasks({**worker_env, "TASK_SOFT_TIME_LIMIT": str(SOFT), "TASK_TIME_LIMIT": str(HARD)})
    return env, start_worker(processes, env)


def test_the_soft_time_limit_interrupts_a_task(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    _, worker = limited_worker(processes, worker_env)
    started = time.monotonic()
    result = celery_client.send_task(SLEEP_TASK, args=(30,))
    with pytest.raises(SoftTimeLimitExceeded):
        result.get(timeout=20)
    assert time.monotonic() - started < HARD + 5
    assert f"Soft time limit ({SOFT}s) exceeded for task {result.id}" in processes.output(worker)
    assert celery_client.send_task(ADD_TASK, args=(2, 3)).get(timeout=10) == 5


def test_the_hard_time_limit_fails_a_task_that_outlives_its_soft_one_and_acks_it(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    env, worker = limited_worker(processes, worker_env)
    result = celery_client.send_task(STUBBORN_SLEEP_TASK, args=(30,))
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=20)
    output = processes.output(worker)
    assert f"Soft time limit ({SOFT}s) exceeded for task {result.id}" in output
    assert f"Hard time limit ({HARD}s) exceeded for task {result.id}" in output
    assert celery_client.send_task(ADD_TASK, args=(2, 3)).get(timeout=10) == 5
    # Failed, so acknowledged: once the worker is gone, nothing returns to the queue.
    assert processes.stop(worker) == 0
    assert queue_depth(env["BROKER_URL"], env["QUEUE_NAME"]) == 0
    assert output.count(f"[{result.id}] received") == 1


def test_a_task_that_ignores_both_limits_stops_the_worker_and_goes_back_to_the_queue(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    env, worker = limited_worker(processes, worker_env)
    result = celery_client.send_task(UNSTOPPABLE_SLEEP_TASK, args=(600,))
    assert worker.wait(timeout=HARD + HARD_LIMIT_GRACE + 15) == EXIT_TASK_STUCK
    output = processes.output(worker)
    assert f"task {result.id} still running" in output
    assert "did not stop at TimeLimitExceeded; stopping the worker" in output
    beat = read_heartbeat(Path(env["WORKER_HEALTH_FILE"]))
    assert beat is not None and beat.state == STOPPED
    # Not acknowledged: the broker has it again, for the next worker (until the delivery limit).
    wait_until(lambda: queue_depth(env["BROKER_URL"], env["QUEUE_NAME"]) == 1, timeout=10,
               what="the task back in the queue")


def test_a_long_task_keeps_the_connection_the_heartbeat_file_and_flower_heartbeats(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    env = with_test_tasks({**worker_env, "WORKER_BROKER_HEARTBEAT": str(AMQP_HEARTBEAT)})
    worker = start_worker(processes, env)
    node = f"celery.{worker.pid}@"
    heartbeat_file = Path(env["WORKER_HEALTH_FILE"])
    with TaskEvents(env["BROKER_URL"]) as events:
        result = celery_client.send_task(SLEEP_TASK, args=(LONG_TASK_SECONDS,))
        # Seen while the task runs: the guard sends the events the worker's loop had buffered.
        events.wait(lambda: bool(events.started_of(node)), timeout=5, what="the long task started")
        started = float(events.started_of(node)[0]["timestamp"])
        assert time.time() < started + LONG_TASK_SECONDS / 2
        beats: list[Any] = []
        # Sample the heartbeat file through the task (the probe's view), well past two AMQP heartbeats.
        for _ in range(LONG_TASK_SECONDS - 2):
            second = time.time() + 1
            events.wait(lambda s=second: time.time() > s, timeout=5, what="a second of events")  # type: ignore[misc]
            beats.append(read_heartbeat(heartbeat_file))
        assert result.get(timeout=30) == LONG_TASK_SECONDS
        events.wait(lambda: bool(events.of(node)[1]), timeout=10, what="the long task's success event")
    # The probe's view while the task runs, past two AMQP heartbeats.
    late = [b for b in beats
            if b is not None and started + 2 * AMQP_HEARTBEAT < b.time < started + LONG_TASK_SECONDS - 1]
    assert len(late) >= 3, (started, beats)
    for beat in late:
        assert beat.state == CONSUMING, beat
        assert f"running task {result.id}" in beat.detail, (beat, started, beats)
    during = [e for e in events.heartbeats
              if str(e.get("hostname", "")).startswith(node) and started + 1 < e["timestamp"] < started + 9]
    assert len(during) >= 3, f"worker-heartbeat events during the task: {len(during)}"
    output = processes.output(worker)
    assert "Connection to broker lost" not in output
    assert output.count(f"[{result.id}] received") == 1  # acknowledged over the same connection: no rerun
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
