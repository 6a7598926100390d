"""Every metric the chart's alerts and dashboards read is one the exporters really emit: the PrometheusRule
(rendered by helm with every alert on) and files/dashboards/*.json are parsed for metric names, and each
is looked up in real scrapes: the private RabbitMQ node's Prometheus plugin at exactly the endpoints (paths
and params) the chart's rendered ServiceMonitor scrapes, while a real worker consumes a quorum queue, and a
real Flower's /metrics after a few ``add`` tasks.

The private node is Debian's RabbitMQ 3.10 while the chart deploys 4.1. The names used here are the same in
both (the 4.1.4 plugin's collectors define them so), with one difference past 4.1: RabbitMQ 4.2 moved the
per-queue raft metrics to a seshat-based collector, where the term is rabbitmq_detailed_raft_term (no
_total; still labelled vhost and queue). The quorum alert and dashboard panel select either name
(``__name__=~``), and a selector counts as emitted when one of its names is: 3.10 emits the _total one."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import yaml
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from taskqueue.app import ADD_TASK, dead_letter_queue_name
from taskqueue.private_broker import PrivateBroker
from tests.chart.rendering import CHART_DIR, Helm, ValuesSet, find_helm, newest_kube_version
from tests.integration.test_flower import client_app, flower_env, start_flower
from tests.support.processes import Processes
from tests.support.promql import dashboard_exprs, load_dashboards, metric_name_choices
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

__all__ = ["client_app", "flower_env"]  # fixtures, used by name

#: Recorded by Prometheus for every scrape target, emitted by no exporter.
PROMETHEUS_OWN = {"up"}
#: Every alert on: Flower deployed, quorum queues, several nodes.
ALL_ALERTS_VALUES = ValuesSet.of("all-alerts", overrides={
    "metrics": {"prometheusRule": {"enabled": True}, "serviceMonitor": {"enabled": True}},
    "networkPolicy": {"metricsFrom": [{"podSelector": {"matchLabels": {"app": "prometheus"}}}]},
    "rabbitmq": {"replicaCount": 3},
})

Samples = dict[str, list[dict[str, str]]]


def scrape(url: str) -> Samples:
    """{sample name: [labels of each sample]} of one GET, read with the official client's text parser
    (histogram samples keep their _bucket/_sum/_count names, counters their _total)."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, (url, response.status_code, response.text[:200])
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(dict(sample.labels))
    return samples


@functools.cache
def all_alerts_manifest() -> list[dict[str, Any]]:
    """The chart rendered once with every alert and monitor on."""
    path = find_helm("helm4")
    if path is None:
        pytest.fail("helm4 is not installed: run scripts/install-helm.sh .venv")
    rendered = Helm("helm4", path).template(ALL_ALERTS_VALUES, newest_kube_version())
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def rendered(kind: str, component: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (of ``component``) in ``all_alerts_manifest()``."""
    found = [doc for doc in all_alerts_manifest() if doc.get("kind") == kind and (
        component is None or doc["metadata"]["labels"]["app.kubernetes.io/component"] == component)]
    assert len(found) == 1, (kind, component, len(found))
    obj: dict[str, Any] = found[0]
    return obj


def alert_exprs() -> list[str]:
    rules = rendered("PrometheusRule")
    return [rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]]


def monitored_paths() -> list[str]:
    """Path and query of each endpoint of the rendered RabbitMQ ServiceMonitor."""
    monitor = rendered("ServiceMonitor", "rabbitmq")
    paths = []
    for endpoint in monitor["spec"]["endpoints"]:
        params = endpoint.get("params") or {}
        query = urlencode([(key, value) for key, values in params.items() for value in values])
        paths.append(endpoint["path"] + (f"?{query}" if query else ""))
    return paths


def referenced_names() -> dict[frozenset[str], set[str]]:
    """{metric names a selector may read (any one will do): where it is read}: the alerts' expressions and
    every dashboard query."""
    where: dict[frozenset[str], set[str]] = {}
    for expr in alert_exprs():
        for choice in metric_name_choices(expr):
            where.setdefault(choice, set()).add("PrometheusRule")
    for file_name, dashboard in load_dashboards(CHART_DIR / "files" / "dashboards").items():
        for expr in dashboard_exprs(dashboard):
            for choice in metric_name_choices(expr):
                where.setdefault(choice, set()).add(file_name)
    return where


@pytest.fixture
def prometheus_url(session_broker: PrivateBroker | None) -> Iterator[str]:
    if session_broker is not None and session_broker.prometheus_url:
        yield session_broker.prometheus_url
        return
    url = os.environ.get("BROKER_PROMETHEUS_URL")
    if not url:
        pytest.skip("BROKER_URL names the broker and BROKER_PROMETHEUS_URL (its Prometheus endpoint, e.g. "
                    "http://host:15692) is unset; without BROKER_URL the private node serves one")
    yield url.rstrip("/")


def test_alerts_and_dashboards_read_only_emitted_metrics(
    processes: Processes, flower_env: dict[str, str], client_app: Celery, queue_name: str,
    prometheus_url: str,
) -> None:
    referenced = referenced_names()
    # The parser found the families the alerts are about (a parser that finds nothing would pass). The
    # quorum alert reads the raft term under its RabbitMQ <= 4.1 name (3.10 here, 4.1 in the chart) or its
    # 4.2 name: either satisfies it.
    names = set().union(*referenced)
    assert {"rabbitmq_detailed_queue_messages_ready", "rabbitmq_alarms_memory_used_watermark",
            "flower_events_total", "flower_task_runtime_seconds_bucket", "up"} <= names
    assert frozenset({"rabbitmq_detailed_raft_term_total", "rabbitmq_detailed_raft_term"}) in referenced

    flower = start_flower(processes, flower_env)
    worker = processes.taskqueue("worker", env=flower_env)
    worker_name = f"celery.{worker.pid}@{os.uname().nodename}"
    results = [client_app.send_task(ADD_TASK, args=(i, 1)) for i in range(5)]
    assert [result.get(timeout=60) for result in results] == [i + 1 for i in range(5)]

    flower_names = {name for name in names if name.startswith("flower_")}

    def flower_complete() -> Samples | None:
        samples = scrape(flower.url + "metrics")
        return samples if flower_names <= set(samples) else None

    flower_samples = wait_until(
        flower_complete, timeout=60, what=f"{sorted(flower_names)} in Flower's /metrics",
        detail=lambda: str(sorted(n for n in scrape(flower.url + "metrics") if n.startswith("flower_"))),
    )
    assert {"task": ADD_TASK, "type": "task-succeeded", "worker": worker_name} in (
        flower_samples["flower_events_total"]
    )

    paths = monitored_paths()

    def rabbitmq_scrape() -> Samples:
        merged: Samples = {}
        for path in paths:
            for name, labels in scrape(prometheus_url + path).items():
                merged.setdefault(name, []).extend(labels)
        return merged

    # The worker consumes its quorum queue: the queue's per-object series carry vhost and queue labels.
    ours = {"vhost": "/", "queue": queue_name}

    def queue_reported() -> Samples | None:
        samples = rabbitmq_scrape()
        per_queue = ("rabbitmq_detailed_queue_consumers", "rabbitmq_detailed_queue_messages_ready",
                     "rabbitmq_detailed_raft_term_total")
        return samples if all(ours in samples.get(name, []) for name in per_queue) else None

    rabbitmq_samples = wait_until(queue_reported, timeout=30, what=f"the series of queue {queue_name}")
    dead_letter = {"vhost": "/", "queue": dead_letter_queue_name(queue_name)}
    assert dead_letter in rabbitmq_samples["rabbitmq_detailed_queue_messages"]
    assert dead_letter in rabbitmq_samples["rabbitmq_detailed_raft_term_total"]

    emitted = set(flower_samples) | set(rabbitmq_samples) | PROMETHEUS_OWN
    missing = {"|".join(sorted(choice)): sorted(where) for choice, where in referenced.items()
               if not choice & emitted}
    assert missing == {}, f"metrics read but emitted by no exporter: {missing}"

