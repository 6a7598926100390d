"""SIGTERM, as the kubelet sends it (`docker stop` with the pod's grace period): each container exits 0
well before its grace period, and no `add` task is lost or run twice (a finished task left unacknowledged
would be redelivered and run again)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from taskqueue.app import ADD_TASK
from taskqueue.private_broker import PrivateBroker
from tests.container.pods import Container, Pods
from tests.container.release import (
    CONTAINER_TIMEOUT,
    Render,
    queue_stats,
    sent_task_ids,
    start_ready,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.container, pytest.mark.timeout(CONTAINER_TIMEOUT)]

#: Tasks queued from the host before the worker starts: a backlog of several seconds' work at the worker's
#: fastest, so that SIGTERM (sent once it has run 50) finds it busy with tasks reserved and more queued.
BURST = 8000
SUCCEEDED = re.compile(r"Task taskqueue\.tasks\.add\[([0-9a-f-]{36})\] succeeded")


def executed(worker: Container) -> list[str]:
    return SUCCEEDED.findall(worker.logs())


def stopped_cleanly(container: Container) -> None:
    grace = container.source.grace_seconds
    code, seconds = container.stop(grace)
    assert code == 0, f"{container.source.component} exited {code}:\n{container.logs()[-3000:]}"
    assert seconds < grace, f"{container.source.component} took {seconds:.1f}s of its {grace}s grace period"


def test_sigterm_stops_each_container_with_exit_0_in_its_grace_period_losing_no_task(
    pods: Pods, isolated_render: Render, container_broker: PrivateBroker
) -> None:
    render, queue = isolated_render, isolated_render.queue
    flower = start_ready(pods, render.workload("flower"))
    producer = start_ready(pods, render.workload("producer"))

    from taskqueue.app import create_app
    from taskqueue.config import Settings

    user, password = render.broker_credentials
    url = f"amqp://{user}:{password}@127.0.0.1:{container_broker.port}//"
    app = create_app(Settings(broker_url=url, queue_name=queue))  # type: ignore[arg-type]
    try:
        burst = [app.send_task(ADD_TASK, args=(n, 1), ignore_result=True).id for n in range(BURST)]
    finally:
        app.close()
    # Not start_ready: its probe polling would let the worker eat into the backlog; 50 tasks run prove it up.
    worker = pods.run(render.workload("worker"))
    wait_until(lambda: len(executed(worker)) >= 50, timeout=60, interval=0.1,
               what="the worker to be busy with the backlog")

    stopped_cleanly(worker)
    first = executed(worker)
    stopped_cleanly(producer)
    sent = set(sent_task_ids(producer))
    assert sent, producer.logs()[-2000:]
    # The broker notices the closed connection a moment later; what the worker held goes back to the queue
    # (held, not finished: a finished one would run twice below).
    wait_until(lambda: queue_stats(container_broker, queue)["consumers"] == 0, timeout=15, interval=0.5,
               what=f"the broker to drop the stopped worker's consumer on {queue}")
    left = queue_stats(container_broker, queue)
    assert left["messages_unacknowledged"] == 0, left
    assert len(set(first) & set(burst)) < BURST, "the backlog was gone before SIGTERM: nothing was in flight"

    # What the stopped worker had not taken stays queued, not lost: the same pod, started again, runs it.
    successor = start_ready(pods, render.workload("worker"))
    wait_until(lambda: queue_stats(container_broker, queue) == {
        "messages_ready": 0, "messages_unacknowledged": 0, "consumers": 1}, timeout=120, interval=0.5,
        what=f"the successor to drain {queue}")
    stopped_cleanly(successor)
    stopped_cleanly(flower)

    runs = Counter(first + executed(successor))
    assert set(runs) == set(burst) | sent, "tasks sent but never run, or run but never sent"
    twice = [task_id for task_id, count in runs.items() if count > 1]
    assert twice == [], f"{len(twice)} tasks ran twice (finished, left unacknowledged, redelivered)"
