"""Flower's /metrics, what the chart's Flower ServiceMonitor scrapes, fed by a real ``taskqueue worker``'s
task events on the private broker: every ``add`` that succeeds counts once in
flower_events_total{task="taskqueue.tasks.add",type="task-succeeded"}, and once in the runtime histogram."""

from __future__ import annotations

import os
import time

import pytest
import requests
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from taskqueue.app import ADD_TASK
from tests.integration.test_flower import client_app, flower_env, start_flower
from tests.support.processes import Processes
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

__all__ = ["client_app", "flower_env"]  # fixtures, used by name

#: Tasks run per test: few enough to be quick, more than one so that "exactly" means something.
TASKS = 7


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one unauthenticated GET of Flower's /metrics, as Prometheus
    reads it (the official client's text-format parser)."""
    response = requests.get(url, timeout=5)
    assert response.status_code == 200, (response.status_code, response.text[:200])
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sample with exactly these labels; 0 when Flower has not emitted it yet (a counter not yet seen)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_add_succeeded_counter_rises_by_the_tasks_run(
    processes: Processes, flower_env: dict[str, str], client_app: Celery
) -> None:
    flower = start_flower(processes, flower_env)
    metrics_url = flower.url + "metrics"
    worker = processes.taskqueue("worker", env=flower_env)
    worker_name = f"celery.{worker.pid}@{os.uname().nodename}"

    # Flower's basic auth guards its UI and API, not /metrics (what lets a ServiceMonitor scrape it, and
    # why the chart keeps it off the Ingress and behind the NetworkPolicy).
    assert requests.get(flower.url + "api/tasks", timeout=5).status_code == 401

    # The worker's own events reach Flower's metrics: it is online there, so task events will arrive too.
    wait_until(lambda: value(scrape(metrics_url), "flower_worker_online", worker=worker_name) == 1,
               timeout=60, what=f"flower_worker_online{{worker={worker_name!r}}} == 1",
               detail=lambda: processes.tail(worker))
    labels = {"task": ADD_TASK, "type": "task-succeeded", "worker": worker_name}
    before = scrape(metrics_url)
    succeeded_before = value(before, "flower_events_total", **labels)
    runtimes_before = value(before, "flower_task_runtime_seconds_count", task=ADD_TASK, worker=worker_name)

    results = [client_app.send_task(ADD_TASK, args=(i, 1000)) for i in range(TASKS)]
    assert [result.get(timeout=30) for result in results] == [i + 1000 for i in range(TASKS)]

    expected = succeeded_before + TASKS
    wait_until(lambda: value(scrape(metrics_url), "flower_events_total", **labels) >= expected, timeout=30,
               what=f"{TASKS} more task-succeeded events for {ADD_TASK} in Flower's /metrics")
    time.sleep(2)  # any duplicate event would arrive within this
    after = scrape(metrics_url)
    assert value(after, "flower_events_total", **labels) == expected
    for event in ("task-received", "task-started"):
        assert value(after, "flower_events_total", task=ADD_TASK, type=event, worker=worker_name) >= TASKS
    assert value(after, "flower_events_total", task=ADD_TASK, type="task-failed", worker=worker_name) == 0
    runtimes = value(after, "flower_task_runtime_seconds_count", task=ADD_TASK, worker=worker_name)
    assert runtimes == runtimes_before + TASKS
    assert value(after, "flower_worker_online", worker=worker_name) == 1


def test_metrics_are_served_under_the_url_prefix(processes: Processes, flower_env: dict[str, str]) -> None:
    """The chart's Flower ServiceMonitor scrapes <prefix>/metrics when flower.ingress.path sets a prefix."""
    env = {**flower_env, "FLOWER_URL_PREFIX": "/ops/flower/"}
    flower = start_flower(processes, env)
    response = requests.get(flower.url + "metrics", timeout=5)
    assert response.status_code == 200, response.status_code
    # Declared before any event (a labelled family without samples yet); counters drop "_total" here.
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert families >= {"flower_events", "flower_task_runtime_seconds", "flower_worker_online",
                        "flower_worker_number_of_currently_executing_tasks"}, sorted(families)
    root = f"http://127.0.0.1:{env['FLOWER_PORT']}/"
    assert requests.get(root + "metrics", timeout=5).status_code == 404
