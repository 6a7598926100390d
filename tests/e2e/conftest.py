"""Fixtures of the e2e layer: a live cluster for the session (the one KUBECONFIG names, else a simulated
one started here from scripts/cluster.sh and stopped at the end), restricted namespaces, Helm releases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chart.rendering import find_helm
from tests.support.cluster import (
    RESTRICTED_NAMESPACE_LABELS,
    LiveCluster,
    NamespaceFactory,
    configured_cluster,
    start_simulated_cluster,
)
from tests.support.helm_release import IMAGE_VARIABLES, HelmRelease, ReleaseFactory


@pytest.fixture(scope="session")
def live_cluster() -> Iterator[LiveCluster]:
    cluster = configured_cluster() or start_simulated_cluster(f"tq-e2e-{os.getpid()}")
    # pytest-helm-charts runs `kubectl` from PATH: the simulated cluster's own, so client and server agree.
    previous_path = os.environ["PATH"]
    if Path(cluster.kubectl).is_absolute():
        os.environ["PATH"] = f"{Path(cluster.kubectl).parent}{os.pathsep}{previous_path}"
    try:
        yield cluster
    finally:
        os.environ["PATH"] = previous_path
        cluster.stop()


@pytest.fixture(scope="module")
def kube_config(live_cluster: LiveCluster) -> str:
    """pytest-helm-charts' kube_config, pointed at the session's cluster (its kube_cluster uses it)."""
    return str(live_cluster.kubeconfig)


@pytest.fixture(scope="session")
def simulated(live_cluster: LiveCluster) -> bool:
    return live_cluster.simulated


@pytest.fixture
def needs_containers(simulated: bool) -> None:
    """For a test that needs containers to run (Flower's task list, the test pod's real sum)."""
    if simulated:
        pytest.skip("needs real containers: the simulated cluster schedules and admits pods but runs none "
                    "(run scripts/e2e-kind.sh on a machine with Docker that can pull images)")


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    helm = find_helm("helm4")
    assert helm is not None, "helm4 is missing: run scripts/setup.sh"
    return helm


@pytest.fixture(scope="session")
def image_values() -> dict[str, Any]:
    """The project image for clusters that run it; the simulated cluster never pulls it."""
    repository, tag = (os.environ.get(name, "") for name in IMAGE_VARIABLES)
    image = {key: value for key, value in (("repository", repository), ("tag", tag)) if value}
    return {"image": image} if image else {}


@pytest.fixture
def restricted_namespace(namespace_factory_function_scope: Any) -> NamespaceFactory:
    """Makes namespaces whose pods admission holds to the `restricted` Pod Security Standard; each is
    deleted after the test (pytest-helm-charts' namespace factory)."""

    def make() -> str:
        name = f"tq-{uuid.uuid4().hex[:8]}"
        namespace_factory_function_scope(name, extra_metadata={"labels": RESTRICTED_NAMESPACE_LABELS})
        return name

    return make


@pytest.fixture
def release_factory(
    live_cluster: LiveCluster, helm_binary: Path, restricted_namespace: NamespaceFactory
) -> Iterator[ReleaseFactory]:
    """Makes HelmRelease objects (not yet installed); every one still installed is uninstalled after."""
    made: list[HelmRelease] = []

    def make(name: str = "tq", namespace: str | None = None) -> HelmRelease:
        release = HelmRelease(live_cluster, helm_binary, name, namespace or restricted_namespace())
        made.append(release)
        return release

    yield make
    for release in made:
        if release.installed():
            release.uninstall()
