"""Metrics (metrics.serviceMonitor): a ServiceMonitor for RabbitMQ's Prometheus plugin (/metrics and the
per-queue /metrics/detailed) and one for Flower's /metrics, each selecting exactly its Service and a port
that Service has; the NetworkPolicies admit scrapes only from networkPolicy.metricsFrom."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.chart.rendering import (
    CHART_DIR,
    NAMESPACE,
    Manifest,
    RenderFn,
    chart_values,
    file_values_set,
    pod_spec_of,
)
from tests.chart.test_schema import NEWEST, crd_schema, validate_object
from tests.support.crds import CrdsUnavailable
from tests.support.monitors import selects, targets

SCRAPERS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
ON: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True}}, "networkPolicy": {"metricsFrom": SCRAPERS}
}
MONITORING_VALUES = file_values_set(CHART_DIR / "ci" / "monitoring-values.yaml")

#: The per-queue families of /metrics/detailed the alerts and dashboards read (rabbitmq_detailed_queue_*).
DETAILED_FAMILIES = ["queue_coarse_metrics", "queue_consumer_count", "ra_metrics"]
RABBITMQ_ENDPOINTS = [("metrics", "/metrics", None), ("metrics", "/metrics/detailed", DETAILED_FAMILIES)]


def with_on(**extra: Any) -> dict[str, Any]:
    """ON plus `extra`; extra["metrics"] holds metrics.serviceMonitor keys."""
    values: dict[str, Any] = {**ON, **extra}
    values["metrics"] = {"serviceMonitor": {"enabled": True, **extra.get("metrics", {})}}
    return values


def monitors(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """The ServiceMonitors by component."""
    every = manifest.find("ServiceMonitor")
    found = {m["metadata"]["labels"]["app.kubernetes.io/component"]: m for m in every}
    assert len(found) == len(every), "two ServiceMonitors of one component"
    return found


def endpoints(monitor: dict[str, Any]) -> list[tuple[str, str, list[str] | None]]:
    return [(e["port"], e["path"], (e.get("params") or {}).get("family"))
            for e in monitor["spec"]["endpoints"]]


def test_no_monitor_by_default(default_manifest: Manifest) -> None:
    assert not default_manifest.find("ServiceMonitor")
    assert not {o["apiVersion"] for o in default_manifest.objects} & {"monitoring.coreos.com/v1"}


def test_rabbitmq_monitor_scrapes_aggregated_and_per_queue_metrics(render: RenderFn) -> None:
    manifest = render(ON)
    monitor = monitors(manifest)["rabbitmq"]
    assert endpoints(monitor) == RABBITMQ_ENDPOINTS
    service = manifest.broker_service()
    metrics_port = next(p for p in service["spec"]["ports"] if p["name"] == "metrics")
    assert metrics_port["port"] == 15692
    container_ports = {p["name"]: p["containerPort"] for p in manifest.container("rabbitmq")["ports"]}
    assert container_ports["metrics"] == 15692
    # The headless Service carries the same labels but no metrics port: one Service yields the targets.
    services = manifest.find("Service")
    assert sorted(s["metadata"]["name"] for s in services if selects(monitor, s)) == sorted(
        s["metadata"]["name"] for s in manifest.find("Service", component="rabbitmq"))
    assert targets(monitor, services) == [
        (service["metadata"]["name"], "metrics", "/metrics"),
        (service["metadata"]["name"], "metrics", "/metrics/detailed"),
    ]


def test_flower_monitor_scrapes_flowers_metrics(render: RenderFn) -> None:
    manifest = render(ON)
    monitor = monitors(manifest)["flower"]
    assert endpoints(monitor) == [("http", "/metrics", None)]
    service = manifest.one("Service", component="flower")
    assert targets(monitor, manifest.find("Service")) == [(service["metadata"]["name"], "http", "/metrics")]
    container = manifest.container("flower")
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 5555}
    # Flower's /metrics is unauthenticated: the monitor carries no credentials.
    assert not {"basicAuth", "authorization", "bearerTokenSecret"} & set(monitor["spec"]["endpoints"][0])


@pytest.mark.parametrize(
    ("path", "expected"), [("/flower", "/flower/metrics"), ("/ops/flower/", "/ops/flower/metrics")]
)
def test_flower_monitor_follows_the_url_prefix(render: RenderFn, path: str, expected: str) -> None:
    """Flower serves /metrics under its url_prefix (flower.ingress.path), Ingress or not."""
    manifest = render(with_on(flower={"ingress": {"path": path}}))
    assert endpoints(monitors(manifest)["flower"]) == [("http", expected, None)]


def test_monitors_select_only_their_release(render: RenderFn) -> None:
    """Two releases in one namespace: each release's monitors pick only its own Services."""
    ours, theirs = render(ON), render(MONITORING_VALUES.as_release("other"))
    services = ours.find("Service") + theirs.find("Service")
    for component, monitor in monitors(ours).items():
        picked = {name for name, _, _ in targets(monitor, services)}
        assert picked == {s["metadata"]["name"] for s in ours.find("Service", component=component)
                          if s["spec"].get("clusterIP") != "None"}, component


def test_rabbitmq_monitor_absent_with_an_external_broker(render: RenderFn) -> None:
    external = file_values_set(CHART_DIR / "ci" / "external-broker-values.yaml")
    manifest = render(external.with_overrides(ON))
    assert set(monitors(manifest)) == {"flower"}


def test_scrape_settings_reach_every_endpoint(render: RenderFn) -> None:
    relabel = [{"targetLabel": "cluster", "replacement": "eu-1", "action": "replace"}]
    drop = [{"sourceLabels": ["__name__"], "regex": "erlang_vm_.*", "action": "drop"}]
    manifest = render(with_on(metrics={
        "namespace": "monitoring", "labels": {"release": "kube-prometheus-stack"}, "interval": "1m",
        "scrapeTimeout": "20s", "relabelings": relabel, "metricRelabelings": drop,
    }))
    found = monitors(manifest)
    assert set(found) == {"rabbitmq", "flower"}
    for monitor in found.values():
        assert monitor["metadata"]["namespace"] == "monitoring"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        # In another namespace, the monitor still looks for the Services in the release's.
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("1m", "20s")
            assert endpoint["relabelings"] == relabel
            assert endpoint["metricRelabelings"] == drop


def test_chart_labels_win_over_monitor_labels(render: RenderFn) -> None:
    manifest = render(with_on(metrics={"labels": {"app.kubernetes.io/component": "x", "team": "ops"}}))
    for component, monitor in monitors(manifest).items():
        assert monitor["metadata"]["labels"]["app.kubernetes.io/component"] == component
        assert monitor["metadata"]["labels"]["team"] == "ops"


def test_metrics_ports_admit_only_the_scrapers(render: RenderFn) -> None:
    """With the monitors on, 15692 and Flower's port are open to networkPolicy.metricsFrom and nobody else
    (no Flower UI peers are set here)."""
    manifest = render(MONITORING_VALUES)
    values_peers = [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }]
    broker_rules = manifest.one("NetworkPolicy", component="rabbitmq")["spec"]["ingress"]
    metrics_rules = [r for r in broker_rules if {"port": "metrics", "protocol": "TCP"} in r["ports"]]
    assert metrics_rules == [{"from": values_peers, "ports": [{"port": "metrics", "protocol": "TCP"}]}]
    flower_rules = manifest.one("NetworkPolicy", component="flower")["spec"]["ingress"]
    assert flower_rules == [{"from": values_peers, "ports": [{"port": "http", "protocol": "TCP"}]}]
    # The named ports are the containers' 15692 and 5555.
    broker_ports = {p["name"]: p["containerPort"] for p in manifest.container("rabbitmq")["ports"]}
    assert broker_ports["metrics"] == 15692
    flower_pod = pod_spec_of(manifest.workload("flower"))
    assert {p["name"]: p["containerPort"] for p in flower_pod["containers"][0]["ports"]} == {"http": 5555}


def test_monitoring_scenario_renders_both_monitors(render: RenderFn) -> None:
    manifest = render(MONITORING_VALUES)
    found = monitors(manifest)
    assert set(found) == {"rabbitmq", "flower"}
    for monitor in found.values():
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert {e["interval"] for e in monitor["spec"]["endpoints"]} == {"15s"}


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({**ON, "flower": {"enabled": False}}, "metrics.serviceMonitor.enabled needs flower.enabled"),
        ({"metrics": {"serviceMonitor": {"enabled": True}}},
         "networkPolicy.metricsFrom must list the Prometheus"),
        (with_on(metrics={"interval": "30s", "scrapeTimeout": "1m"}),
         "metrics.serviceMonitor.scrapeTimeout (1m) must not exceed metrics.serviceMonitor.interval (30s)"),
    ],
    ids=["flower-disabled", "no-scrapers-admitted", "timeout-over-interval"],
)
def test_contradictory_values_are_refused(render_error: Any, values: dict[str, Any], problem: str) -> None:
    assert problem in render_error(values)


def test_timeout_equal_to_a_longer_written_interval_renders(render: RenderFn) -> None:
    """Durations compare by value, not as strings: 90s is within 1m30s."""
    manifest = render(with_on(metrics={"interval": "1m30s", "scrapeTimeout": "90s"}))
    assert len(monitors(manifest)) == 2


def test_no_network_policy_needs_no_scrapers(render: RenderFn) -> None:
    manifest = render({"metrics": {"serviceMonitor": {"enabled": True}}, "networkPolicy": {"enabled": False}})
    assert set(monitors(manifest)) == {"rabbitmq", "flower"}
    assert not manifest.find("NetworkPolicy")


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda m: m["spec"]["endpoints"][0].update(interval="30 seconds"), "does not match"),
        (lambda m: m["spec"]["endpoints"][0].update(scrapeEvery="30s"), "Additional properties"),
        (lambda m: m["spec"].update(selector={"matchLabels": {"a": 1}}), "is not of type 'string'"),
    ],
    ids=["bad-duration", "unknown-endpoint-field", "numeric-label"],
)
def test_real_crd_schema_rejects_what_the_api_server_would(
    render: RenderFn, mutation: Any, expected: str
) -> None:
    """The ServiceMonitors are validated (test_schema.py) against the Prometheus Operator's own CRD; that
    schema is strict and can fail."""
    try:
        assert crd_schema("monitoring.coreos.com/v1", "ServiceMonitor") is not None
    except CrdsUnavailable as exc:
        pytest.fail(f"the Prometheus Operator's CRDs are needed: {exc}")
    monitor = copy.deepcopy(monitors(render(ON))["flower"])  # renders are cached: mutate a copy
    assert validate_object(monitor, NEWEST) == ("crd", None)
    mutation(monitor)
    _, error = validate_object(monitor, NEWEST)
    assert error is not None and expected in error, error


@pytest.mark.parametrize(
    ("monitor", "key"),
    [
        ({"interval": "30 seconds"}, "interval"),
        ({"scrapeTimeout": "10"}, "scrapeTimeout"),
        ({"namespace": "Monitoring"}, "namespace"),
        ({"labels": {"release": 1}}, "labels"),
        ({"relabelings": ["drop"]}, "relabelings"),
        ({"podMonitor": True}, "podMonitor"),
    ],
    ids=["interval-words", "timeout-no-unit", "namespace-uppercase", "label-number", "relabeling-string",
         "unknown-key"],
)
def test_schema_refuses_bad_monitor_values(render_error: Any, monitor: dict[str, Any], key: str) -> None:
    error = render_error(with_on(metrics=monitor))
    assert "values don't meet the specifications of the schema" in error
    assert "/metrics/serviceMonitor" in error and key in error, error


def test_every_service_monitor_key_is_typed_documented_and_listed() -> None:
    """Each metrics.serviceMonitor key: a `# --` comment right above it in values.yaml, a type in
    values.schema.json, and a row in the chart README's values table."""
    defaults = chart_values()["metrics"]["serviceMonitor"]
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    typed = schema["properties"]["metrics"]["properties"]["serviceMonitor"]["properties"]
    readme = (CHART_DIR / "README.md").read_text()
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    start = lines.index("  serviceMonitor:")
    assert set(defaults) == set(typed), set(defaults) ^ set(typed)
    for key in defaults:
        at = next(i for i in range(start, len(lines)) if lines[i].startswith(f"    {key}:"))
        above = at - 1
        while lines[above].startswith("    # ") and not lines[above].startswith("    # --"):
            above -= 1
        assert lines[above].startswith("    # -- "), f"metrics.serviceMonitor.{key} lacks its # -- comment"
        assert "type" in typed[key] and typed[key].get("description"), key
        assert f"| `metrics.serviceMonitor.{key}` |" in readme, key
