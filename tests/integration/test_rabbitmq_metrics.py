"""RabbitMQ's Prometheus endpoints exactly as the chart's RabbitMQ ServiceMonitor names them (path and params
taken from the rendered chart), served by the session's private RabbitMQ node with rabbitmq_prometheus on:
per-queue depth, unacked messages and consumers of a real task queue, counted exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from amqp import Message
from kombu.connection import Connection
from prometheus_client.parser import text_string_to_metric_families

from taskqueue.app import task_queue
from taskqueue.config import Settings
from taskqueue.private_broker import PrivateBroker
from tests.chart.rendering import DEFAULT_VALUES, Helm, find_helm, newest_kube_version, parse_manifest
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MESSAGES = 6
#: The aggregated families the alerts read from /metrics.
AGGREGATED = {"rabbitmq_identity_info", "rabbitmq_build_info"}


@pytest.fixture(scope="module")
def scrape_endpoints() -> list[tuple[str, dict[str, list[str]]]]:
    """(path, params) of every endpoint of the chart's RabbitMQ ServiceMonitor, from `helm template`."""
    helm = find_helm("helm4")
    assert helm is not None, "helm4 is missing: run scripts/setup.sh"
    values = DEFAULT_VALUES.with_overrides({"metrics": {"serviceMonitor": {"enabled": True}},
                                            "networkPolicy": {"enabled": False}})
    objects = parse_manifest(Helm("helm4", helm).template(values, newest_kube_version()))
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"
                  and o["metadata"]["labels"]["app.kubernetes.io/component"] == "rabbitmq"]
    return [(e["path"], e.get("params") or {}) for e in monitor["spec"]["endpoints"]]


@pytest.fixture
def prometheus_url(session_broker: PrivateBroker | None) -> str:
    if session_broker is None or session_broker.prometheus_url is None:
        pytest.skip("BROKER_URL names the broker: its Prometheus endpoint is not known here (the session's "
                    "private node serves one; tests/chart/test_metrics.py and tests/e2e cover the monitors)")
    return session_broker.prometheus_url


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, params: dict[str, list[str]]) -> tuple[set[str], Samples]:
    """(family names, {(sample, sorted labels): value}) of one GET, as Prometheus parses it."""
    response = requests.get(url, params=params, timeout=10)
    assert response.status_code == 200, (url, response.status_code, response.text[:200])
    families = list(text_string_to_metric_families(response.text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return {f.name for f in families}, samples


def queue_sample(samples: Samples, name: str, queue: str) -> float | None:
    return samples.get((name, (("queue", queue), ("vhost", "/"))))


@pytest.fixture
def declared_queue(broker_url: str, queue_name: str, tmp_path: Path) -> Iterator[Any]:
    """The chart's task queue (as the worker declares it), and an open connection to it."""
    settings = Settings(broker_url=broker_url, queue_name=queue_name, worker_health_file=tmp_path / "hb")  # type: ignore[arg-type]
    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        task_queue(settings)(connection.channel()).declare()
        yield connection


def test_servicemonitor_endpoints_serve_per_queue_depth_unacked_and_consumers(
    prometheus_url: str, scrape_endpoints: list[tuple[str, dict[str, list[str]]]], declared_queue: Any,
    queue_name: str,
) -> None:
    assert [path for path, _ in scrape_endpoints] == ["/metrics", "/metrics/detailed"]
    (aggregated_path, aggregated_params), (detailed_path, detailed_params) = scrape_endpoints
    families, _ = scrape(prometheus_url + aggregated_path, aggregated_params)
    assert families >= AGGREGATED, sorted(AGGREGATED - families)
    # /metrics aggregates: no per-queue series there.
    assert not {f for f in families if f.startswith("rabbitmq_detailed_")}

    detailed = prometheus_url + detailed_path

    def queue_state(ready: int, unacked: int, consumers: int) -> bool:
        _, samples = scrape(detailed, detailed_params)
        return (queue_sample(samples, "rabbitmq_detailed_queue_messages_ready", queue_name),
                queue_sample(samples, "rabbitmq_detailed_queue_messages_unacked", queue_name),
                queue_sample(samples, "rabbitmq_detailed_queue_messages", queue_name),
                queue_sample(samples, "rabbitmq_detailed_queue_consumers", queue_name),
                ) == (ready, unacked, ready + unacked, consumers)

    channel = declared_queue.channel()
    for i in range(MESSAGES):
        channel.basic_publish(Message(f"m{i}".encode()), exchange="", routing_key=queue_name)
    # The broker refreshes these every statistics interval (5 s by default).
    wait_until(lambda: queue_state(MESSAGES, 0, 0), timeout=30,
               what=f"{MESSAGES} ready, 0 unacked, no consumer on {queue_name} in {detailed_path}")

    consumer = declared_queue.channel()
    consumer.basic_qos(0, MESSAGES, False)
    consumer.basic_consume(queue_name, callback=lambda message: None, no_ack=False)
    wait_until(lambda: queue_state(0, MESSAGES, 1), timeout=30,
               what=f"0 ready, {MESSAGES} unacked, one consumer on {queue_name} in {detailed_path}")

    families, _ = scrape(detailed, detailed_params)
    # Only the families asked for: the per-queue families, not every detailed one.
    assert "rabbitmq_detailed_queue_messages_ready" in families
    assert not {f for f in families if f.startswith("rabbitmq_detailed_channel_")}, sorted(families)
    consumer.close()
    wait_until(lambda: queue_state(MESSAGES, 0, 0), timeout=30,
               what=f"the {MESSAGES} messages ready again once the consumer left")
