"""`helm install` with the defaults on a live cluster, in a namespace that enforces the restricted Pod
Security Standard; then `helm uninstall`."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.helm_release import CHART_DIR, HelmRelease, ReleaseFactory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DEFAULTS: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())

#: What uninstall leaves on purpose (the README says so): the broker's data.
KEPT_AFTER_UNINSTALL = {"PersistentVolumeClaim"}


def replicas_by_component(release: HelmRelease) -> dict[str, tuple[int, int]]:
    """component -> (desired replicas, ready replicas) of the release's Deployments and StatefulSets."""
    return {
        w["metadata"]["labels"]["app.kubernetes.io/component"]: (
            w["spec"]["replicas"], w["status"].get("readyReplicas", 0))
        for w in release.objects("deployments,statefulsets")
    }


@pytest.fixture
def default_release(release_factory: ReleaseFactory, image_values: dict[str, Any]) -> tuple[HelmRelease, Any]:
    release = release_factory()
    revision = release.install(image_values)
    return release, revision


def test_defaults_reach_the_replica_counts_of_their_values(default_release: tuple[HelmRelease, Any]) -> None:
    release, _ = default_release
    expected = {
        "rabbitmq": DEFAULTS["rabbitmq"]["replicaCount"],
        "worker": DEFAULTS["worker"]["replicaCount"],
        "producer": DEFAULTS["producer"]["replicaCount"],
        "flower": DEFAULTS["flower"]["replicaCount"],
    }
    assert replicas_by_component(release) == {c: (n, n) for c, n in expected.items()}
    pods = release.pods()
    assert len(pods) == sum(expected.values())
    assert all(p["status"]["phase"] == "Running" for p in pods), [p["metadata"]["name"] for p in pods]


def test_broker_service_has_the_rabbitmq_pods_as_endpoints(default_release: tuple[HelmRelease, Any]) -> None:
    release, _ = default_release
    services = [s for s in release.objects("services")
                if s["metadata"]["labels"].get("app.kubernetes.io/component") == "rabbitmq"
                and s["spec"].get("clusterIP") != "None"]
    assert len(services) == 1, [s["metadata"]["name"] for s in services]
    broker = services[0]["metadata"]["name"]
    slices = release.cluster.json("get", "endpointslices", "-n", release.namespace,
                                  "-l", f"kubernetes.io/service-name={broker}")["items"]
    endpoints = {e["targetRef"]["name"] for s in slices for e in s.get("endpoints") or []
                 if e["conditions"].get("ready")}
    rabbitmq_pods = {p["metadata"]["name"] for p in release.pods()
                     if p["metadata"]["labels"]["app.kubernetes.io/component"] == "rabbitmq"}
    assert endpoints == rabbitmq_pods
    assert len(rabbitmq_pods) == DEFAULTS["rabbitmq"]["replicaCount"]


def test_notes_render_with_the_release(default_release: tuple[HelmRelease, Any]) -> None:
    release, revision = default_release
    assert revision.notes, "the release has no NOTES"
    assert f"helm test {release.name} --namespace {release.namespace}" in revision.notes


def test_uninstall_leaves_nothing_but_the_broker_claims(default_release: tuple[HelmRelease, Any]) -> None:
    release, _ = default_release
    kinds = release.cluster.run_kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name")
    listable = ",".join(k for k in kinds.split() if k not in ("events", "events.events.k8s.io"))
    before = {o["kind"] for o in release.objects(listable)}
    assert {"StatefulSet", "Deployment", "Service", "Secret"} <= before

    release.uninstall()

    left = release.objects(listable)
    assert {o["kind"] for o in left} <= KEPT_AFTER_UNINSTALL, [
        f'{o["kind"]}/{o["metadata"]["name"]}' for o in left]
