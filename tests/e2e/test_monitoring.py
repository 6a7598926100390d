"""The ServiceMonitors on a live cluster that has the Prometheus Operator's CRDs (scripts/cluster.sh applies
them from the operator's Go module; scripts/e2e-kind.sh too): ci/monitoring-values.yaml installs, the API
server keeps every field of the monitors (nothing pruned by the CRD's schema), and, read back from the API,
each monitor selects its release's Service and a port that Service has, whose EndpointSlices list the
component's pods on the container port Prometheus will scrape."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.cluster import NamespaceFactory
from tests.support.helm_release import CHART_DIR, HelmRelease, ReleaseFactory
from tests.support.monitors import targets

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

MONITORING_VALUES: dict[str, Any] = yaml.safe_load((CHART_DIR / "ci" / "monitoring-values.yaml").read_text())
#: What each ServiceMonitor scrapes: (Service port name, path) per endpoint, and the container port behind.
EXPECTED = {
    "rabbitmq": ([("metrics", "/metrics"), ("metrics", "/metrics/detailed")], 15692),
    "flower": ([("http", "/metrics")], 5555),
}
DETAILED_PARAMS = {"family": ["queue_coarse_metrics", "queue_consumer_count", "ra_metrics"]}


def monitors_of(release: HelmRelease, namespace: str) -> dict[str, dict[str, Any]]:
    items = release.cluster.json("get", "servicemonitors.monitoring.coreos.com", "-n", namespace,
                                 "-l", release.selector)["items"]
    return {m["metadata"]["labels"]["app.kubernetes.io/component"]: m for m in items}


def assert_monitors_select_their_services(release: HelmRelease, monitors: dict[str, dict[str, Any]]) -> None:
    assert set(monitors) == set(EXPECTED), sorted(monitors)
    # Every Service of the cluster: a monitor must pick its release's and nothing else.
    services = release.cluster.json("get", "services", "--all-namespaces")["items"]
    for component, monitor in monitors.items():
        endpoints, container_port = EXPECTED[component]
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        found = targets(monitor, services)
        assert [(port, path) for _, port, path in found] == endpoints, (component, found)
        names = {name for name, _, _ in found}
        assert len(names) == 1, (component, names)
        (service_name,) = names
        service = next(s for s in services if s["metadata"]["name"] == service_name
                       and s["metadata"]["namespace"] == release.namespace)
        assert service["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name
        assert service["metadata"]["labels"]["app.kubernetes.io/component"] == component
        # The named port resolves, in the Service's EndpointSlices, to the component's pods on the
        # container port the process listens on.
        port_name = endpoints[0][0]
        slices = release.cluster.json("get", "endpointslices", "-n", release.namespace,
                                      "-l", f"kubernetes.io/service-name={service_name}")["items"]
        ports = {(p["name"], p["port"]) for s in slices for p in s.get("ports") or []}
        assert (port_name, container_port) in ports, ports
        addresses = {e["targetRef"]["name"] for s in slices for e in s.get("endpoints") or []
                     if (e.get("conditions") or {}).get("ready")}
        pods = {p["metadata"]["name"] for p in release.pods()
                if p["metadata"]["labels"]["app.kubernetes.io/component"] == component}
        assert addresses == pods and pods, (component, addresses, pods)
        # Stored as rendered: the CRD's schema pruned nothing.
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["interval"] == MONITORING_VALUES["metrics"]["serviceMonitor"]["interval"]
            assert endpoint["metricRelabelings"] == [
                {"action": "drop", "regex": "erlang_vm_.*", "sourceLabels": ["__name__"]}]
            if endpoint["path"] == "/metrics/detailed":
                assert endpoint["params"] == DETAILED_PARAMS


def test_monitors_install_and_select_their_services(
    release_factory: ReleaseFactory, image_values: dict[str, Any]
) -> None:
    release = release_factory()
    release.install({**MONITORING_VALUES, **image_values})
    monitors = monitors_of(release, release.namespace)
    assert_monitors_select_their_services(release, monitors)
    for monitor in monitors.values():
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [release.namespace]}


def test_monitors_in_the_monitoring_namespace_select_the_release_namespace(
    release_factory: ReleaseFactory, restricted_namespace: NamespaceFactory, image_values: dict[str, Any]
) -> None:
    """metrics.serviceMonitor.namespace puts the monitors where the Prometheus looks for them; they still
    select the Services in the release's namespace, and a second release's monitors pick only its own."""
    monitoring = restricted_namespace()
    values = {**MONITORING_VALUES, **image_values}
    values["metrics"] = {"serviceMonitor": {**MONITORING_VALUES["metrics"]["serviceMonitor"],
                                            "namespace": monitoring}}
    first = release_factory("tq")
    second = release_factory("tq2", namespace=first.namespace)
    first.install(values)
    second.install(values)
    for release in (first, second):
        monitors = monitors_of(release, monitoring)
        assert_monitors_select_their_services(release, monitors)
        assert not monitors_of(release, release.namespace)
