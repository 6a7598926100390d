"""Which Services, and which of their ports, a Prometheus Operator ServiceMonitor scrapes: its
namespaceSelector, its label selector and its endpoints' port names, as the operator resolves them (a
selected Service without an endpoint's named port yields no target for that endpoint). Shared by the chart
tests (rendered objects) and the e2e tests (objects read back from the API server)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: The ServiceMonitor features these helpers resolve; a monitor using others is refused, not misread.
SUPPORTED_SELECTOR = {"matchLabels"}


def selects(monitor: Mapping[str, Any], service: Mapping[str, Any]) -> bool:
    """Whether the monitor's namespaceSelector and selector pick the Service."""
    spec = monitor["spec"]
    assert set(spec["selector"]) <= SUPPORTED_SELECTOR, spec["selector"]
    namespaces = spec.get("namespaceSelector") or {}
    assert not namespaces.get("any"), "namespaceSelector.any: the monitor would scrape every namespace"
    own = monitor["metadata"].get("namespace")
    wanted = namespaces.get("matchNames") or [own]
    if service["metadata"].get("namespace") not in wanted:
        return False
    labels = service["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in spec["selector"]["matchLabels"].items())


def targets(monitor: Mapping[str, Any], services: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(Service name, port name, path) for every endpoint of the monitor on every Service it selects that
    has that named port, i.e. what Prometheus ends up scraping (once per ready pod behind it)."""
    found = []
    for service in services:
        if not selects(monitor, service):
            continue
        ports = {port.get("name") for port in service["spec"].get("ports", [])}
        for endpoint in monitor["spec"]["endpoints"]:
            assert "port" in endpoint and "targetPort" not in endpoint, endpoint
            if endpoint["port"] in ports:
                path = endpoint.get("path", "/metrics")
                found.append((service["metadata"]["name"], endpoint["port"], path))
    return found
