"""Losing the broker costs the worker a bounded time, whatever its concurrency. With every one of eight
processes running a late-acked task, the worker terminates them (they cannot be acked over the lost
connection) and reports the lost broker in its heartbeat within the probe's max age: no broker round trip
per task (Celery's own termination stores a RETRY state per task through the rpc:// backend, the lost
broker: a connection timeout each, 4 s, 32 s for eight). Once the broker is back, the broker redelivers
the eight tasks and they run again: nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskqueue.app import create_app
from taskqueue.config import Settings
from taskqueue.heartbeat import DISCONNECTED, read_heartbeat
from taskqueue.private_broker import PrivateBroker
from tests.support.events import TaskEvents
from tests.support.processes import Processes
from tests.support.runtime import TEST_HEALTH_MAX_AGE
from tests.support.tasks import SLEEP_TASK, with_test_tasks
from tests.support.waiting import wait_until
from tests.support.workers import start_worker

pytestmark = pytest.mark.integration

CONCURRENCY = 8
#: Long enough to be running at the loss, short enough to rerun in the test.
TASK_SECONDS = 10


def heartbeat_state(path: Path) -> str | None:
    beat = read_heartbeat(path)
    return beat.state if beat is not None else None


def test_broker_loss_with_every_process_busy_is_reported_within_the_probe_max_age(
    processes: Processes, worker_env: dict[str, str], private_broker: PrivateBroker
) -> None:
    env = with_test_tasks({**worker_env, "BROKER_URL": private_broker.url, "WORKER_POOL": "prefork",
                           "WORKER_CONCURRENCY": str(CONCURRENCY)})
    worker = start_worker(processes, env)
    node = f"celery.{worker.pid}@"
    client = create_app(Settings(broker_url=private_broker.url, queue_name=env["QUEUE_NAME"]))  # type: ignore[arg-type]
    try:
        ids = [client.send_task(SLEEP_TASK, args=(TASK_SECONDS,), ignore_result=True).id
               for _ in range(CONCURRENCY)]
        with TaskEvents(private_broker.url) as events:
            events.wait(lambda: sorted(e["uuid"] for e in events.started_of(node)) == sorted(ids), timeout=60,
                        what=f"{CONCURRENCY} sleep tasks started")
    finally:
        client.close()

    private_broker.stop()
    # The heartbeat step writes "disconnected" when Celery restarts the consumer, after it terminated the
    # tasks: the probe's max age bounds that time.
    heartbeat = Path(env["WORKER_HEALTH_FILE"])
    wait_until(lambda: heartbeat_state(heartbeat) == DISCONNECTED, timeout=float(TEST_HEALTH_MAX_AGE),
               interval=0.1, what="the heartbeat to report the lost broker",
               detail=lambda: processes.tail(worker))
    terminated = processes.output(worker).count("cannot be acknowledged after a connection loss")
    assert terminated == CONCURRENCY, processes.tail(worker)

    private_broker.start()
    with TaskEvents(private_broker.url) as events:
        events.wait(lambda: sorted(e["uuid"] for e in events.of(node)[1]) == sorted(ids), timeout=120,
                    what=f"the {CONCURRENCY} redelivered tasks to run again")
    assert worker.poll() is None
