"""A worker SIGKILLed with tasks in flight loses none of them once a new worker runs (late acks)."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from taskqueue.app import ADD_TASK
from tests.support.processes import Processes
from tests.support.tasks import SLEEP_TASK, with_test_tasks
from tests.support.waiting import wait_until
from tests.support.workers import start_worker

pytestmark = pytest.mark.integration


#: Environment of each pool: the inline default, and prefork with two pool processes.
POOLS = {"solo": {}, "prefork": {"WORKER_POOL": "prefork", "WORKER_CONCURRENCY": "2"}}


@pytest.mark.parametrize("pool", list(POOLS))
def test_sigkilled_worker_loses_no_task(
    processes: Processes, worker_env: dict[str, str], celery_client: Any, pool: str
) -> None:
    worker_env = with_test_tasks({**worker_env, **POOLS[pool]})
    first = start_worker(processes, worker_env, name="worker-1")
    # Slow tasks first so some are executing or reserved (unacked) when the worker dies, then a burst of
    # adds. The first sleep runs at the kill (a solo worker logs the next one's "received" only once the
    # first is done); the rest are reserved or still queued.
    sleeping = [celery_client.send_task(SLEEP_TASK, args=(2,)) for _ in range(4)]
    adding = [celery_client.send_task(ADD_TASK, args=(i, 1)) for i in range(200)]
    in_flight = sleeping[:1]
    wait_until(
        lambda: all(f"[{result.id}] received" in processes.output(first) for result in in_flight),
        timeout=30,
        what="the first worker to receive a sleep task",
    )
    processes.stop(first, sig=signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    finished_before = {r.id for r in in_flight if f"[{r.id}] succeeded" in processes.output(first)}
    assert not finished_before, "the tasks were meant to be in flight at the kill"

    start_worker(processes, worker_env, name="worker-2")
    assert [r.get(timeout=60) for r in sleeping] == [2] * 4
    assert [r.get(timeout=60) for r in adding] == [i + 1 for i in range(200)]
    assert all(r.status == "SUCCESS" for r in sleeping + adding)
