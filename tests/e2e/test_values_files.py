"""What `ct install` does, for every values file the chart ships (ci/ scenarios and environments/):
install and wait, `helm test`, upgrade from that revision, `helm test` again. A scenario that names objects
it expects to exist (Secrets, a ServiceAccount) gets them first from prerequisites/<values file name>."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm_release import CHART_DIR, HelmRelease, ReleaseFactory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

PREREQUISITES = Path(__file__).parent / "prerequisites"

#: Scenarios whose broker lives outside the cluster: their pods can only really run where that broker does.
EXTERNAL_BROKER = {"external-broker-values.yaml", "external-broker-url-values.yaml"}

VALUES_FILES = sorted((CHART_DIR / "ci").glob("*-values.yaml")) + sorted(
    (CHART_DIR / "environments").glob("*-values.yaml"))


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_values_file_installs_upgrades_and_passes_helm_test(
    values_file: Path, release_factory: ReleaseFactory, image_values: dict[str, Any], simulated: bool
) -> None:
    if values_file.name in EXTERNAL_BROKER and not simulated:
        pytest.skip(f"{values_file.name} needs the external broker it names, which this cluster lacks")
    values = {**(yaml.safe_load(values_file.read_text()) or {}), **image_values}
    release = release_factory()
    prerequisites = PREREQUISITES / values_file.name
    if prerequisites.exists():
        release.cluster.run_kubectl("apply", "-n", release.namespace, "-f", str(prerequisites))
    release.install(values)
    pods = release.pods()
    assert pods and all(p["status"]["phase"] == "Running" for p in pods), [
        (p["metadata"]["name"], p["status"]["phase"]) for p in pods]
    release.test()
    assert_spread_over_zones(release, values)

    release.upgrade(values)
    assert release.revision() == 2
    release.test()


def assert_spread_over_zones(release: HelmRelease, values: dict[str, Any]) -> None:
    """A broker whose values spread it over zones (the scheduler on three nodes in three zones) has its
    pods in as many zones as it has pods, up to three."""
    spread = (values.get("rabbitmq") or {}).get("topologySpreadConstraints") or []
    if not any(c.get("topologyKey") == "topology.kubernetes.io/zone" for c in spread):
        return
    nodes = {n["metadata"]["name"]: n["metadata"]["labels"].get("topology.kubernetes.io/zone")
             for n in release.cluster.json("get", "nodes")["items"]}
    brokers = [p for p in release.pods()
               if p["metadata"]["labels"]["app.kubernetes.io/component"] == "rabbitmq"]
    zones = {nodes[p["spec"]["nodeName"]] for p in brokers}
    assert len(zones) == min(len(brokers), 3), sorted(zones)
