"""The worker's log per task: by default no "received"/"succeeded" line (WORKER_LOG_TASKS=false: a sixth of
a busy worker's time), while a task that fails still gets its line naming the error; with
WORKER_LOG_TASKS=true, Celery's two lines per task."""

from __future__ import annotations

from typing import Any

import pytest

from taskqueue.app import ADD_TASK
from tests.support.processes import Processes
from tests.support.workers import start_worker

pytestmark = pytest.mark.integration

TASKS = 5


def run_adds(processes: Processes, env: dict[str, str], client: Any) -> tuple[list[str], str, str]:
    """(ids of TASKS good adds, id of a bad one, the worker's output after all have run)."""
    worker = start_worker(processes, env)
    good = [client.send_task(ADD_TASK, args=(i, 1)) for i in range(TASKS)]
    bad = client.send_task(ADD_TASK, args=("two", 1))
    assert [r.get(timeout=30) for r in good] == [i + 1 for i in range(TASKS)]
    with pytest.raises(Exception, match="argument 'x' must be a number"):
        bad.get(timeout=30)
    processes.stop(worker)
    return [r.id for r in good], bad.id, processes.output(worker)


def test_default_logs_failures_only(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    good, bad, output = run_adds(processes, {**worker_env, "WORKER_LOG_TASKS": "false"}, celery_client)
    assert [task_id for task_id in good if task_id in output] == []
    assert f"[{bad}] received" not in output
    failed = [line for line in output.splitlines() if f"[{bad}]" in line]
    assert len(failed) == 1 and "raised expected: InvalidArgumentError" in failed[0], failed


def test_log_tasks_logs_received_and_succeeded(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    good, bad, output = run_adds(processes, {**worker_env, "WORKER_LOG_TASKS": "true"}, celery_client)
    for task_id in good:
        assert output.count(f"Task {ADD_TASK}[{task_id}] received") == 1
        assert output.count(f"Task {ADD_TASK}[{task_id}] succeeded in ") == 1
    assert output.count(f"Task {ADD_TASK}[{bad}] received") == 1
