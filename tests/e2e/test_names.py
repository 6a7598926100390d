"""Names on a live cluster: controllers refuse names and labels over Kubernetes' limits even where the
schema accepts them, so every pod the release asks for must actually be created."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_install import DEFAULTS
from tests.support.cluster import NamespaceFactory
from tests.support.helm_release import HelmRelease, ReleaseFactory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: Helm's longest release name.
LONGEST_RELEASE = "r" * 20 + "-with-a-name-at-helms-limit-of-53"
assert len(LONGEST_RELEASE) == 53

EXPECTED_PODS = sum(DEFAULTS[c]["replicaCount"] for c in ("rabbitmq", "worker", "producer", "flower"))


def assert_every_pod_created(release: HelmRelease) -> None:
    pods = release.pods()
    assert len(pods) == EXPECTED_PODS, sorted(p["metadata"]["name"] for p in pods)
    assert all(p["status"]["phase"] == "Running" for p in pods)


def test_two_releases_share_a_namespace(
    release_factory: ReleaseFactory, restricted_namespace: NamespaceFactory, image_values: dict[str, Any]
) -> None:
    namespace = restricted_namespace()
    first, second = release_factory("tq", namespace), release_factory("tq-two", namespace)
    first.install(image_values)
    second.install(image_values)
    assert_every_pod_created(first)
    assert_every_pod_created(second)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        (LONGEST_RELEASE, {}),
        (LONGEST_RELEASE, {"nameOverride": "n" * 63}),
        ("tq", {"fullnameOverride": "f" * 63}),
        ("tq", {"nameOverride": "a-custom-chart-name"}),
    ],
    ids=["53-char-release", "53-char-release+63-char-nameOverride", "63-char-fullnameOverride",
         "nameOverride"],
)
def test_long_and_overridden_names_create_every_pod(
    name: str, overrides: dict[str, Any], release_factory: ReleaseFactory, image_values: dict[str, Any]
) -> None:
    release = release_factory(name)
    release.install({**overrides, **image_values})
    assert_every_pod_created(release)
