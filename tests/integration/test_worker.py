"""``taskqueue worker`` as a subprocess on the real broker executes ``add``; bad arguments fail cleanly."""

from __future__ import annotations

from typing import Any

import pytest

from taskqueue.app import ADD_TASK
from taskqueue.tasks import InvalidArgumentError
from tests.support.processes import Processes
from tests.support.workers import health_of, start_worker

pytestmark = pytest.mark.integration


def test_worker_executes_add(processes: Processes, worker_env: dict[str, str], celery_client: Any) -> None:
    worker = start_worker(processes, worker_env)
    assert celery_client.send_task(ADD_TASK, args=(2, 3)).get(timeout=30) == 5
    results = [celery_client.send_task(ADD_TASK, args=(i, i)) for i in range(50)]
    assert [result.get(timeout=30) for result in results] == [2 * i for i in range(50)]
    assert celery_client.send_task(ADD_TASK, args=(0.5, 2)).get(timeout=30) == 2.5
    assert health_of(worker_env).healthy
    output = processes.output(worker)
    assert worker_env["QUEUE_NAME"] in output
    assert "guest:guest" not in output  # the broker password is masked everywhere in the log
    masked = worker_env["BROKER_URL"].replace("amqp://guest:guest@", "amqp://guest:***@")
    assert f"taskqueue worker: broker {masked}, queue {worker_env['QUEUE_NAME']} (quorum)" in output


def test_bad_argument_fails_clearly_and_worker_keeps_serving(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    worker = start_worker(processes, worker_env)
    bad = celery_client.send_task(ADD_TASK, args=("a", 1))
    with pytest.raises(InvalidArgumentError) as caught:
        bad.get(timeout=30)
    assert str(caught.value) == "argument 'x' must be a number (int or float), got str 'a'"
    assert bad.status == "FAILURE"
    none = celery_client.send_task(ADD_TASK, args=(1, None))
    with pytest.raises(InvalidArgumentError, match=r"argument 'y' must be a number .* got NoneType None"):
        none.get(timeout=30)
    # The worker still serves, and the failure was neither retried nor redelivered.
    assert celery_client.send_task(ADD_TASK, args=(1, 2)).get(timeout=30) == 3
    assert worker.poll() is None
    output = processes.output(worker)
    assert output.count(f"Task {ADD_TASK}[{bad.id}] received") == 1
    assert "raised expected: InvalidArgumentError(\"argument 'x' must be a number" in output
    assert "Traceback" not in output


def test_nan_arrives_as_a_failure(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    start_worker(processes, worker_env)
    result = celery_client.send_task(ADD_TASK, args=(float("nan"), 1))
    with pytest.raises(InvalidArgumentError, match="must be a finite number, got nan"):
        result.get(timeout=30)
