"""Images: every container the chart runs (init containers, the helm test pod and the secrets hook
included) takes global.imageRegistry, and an image reference is never left without a tag or digest."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import Manifest, RenderFn, all_containers, chart_values, objref

APP_VERSION = "0.1.0"
RABBITMQ_TAG = chart_values()["rabbitmq"]["image"]["tag"]
#: Renders every kind of pod the chart has: the broker with its init container, worker, producer, Flower,
#: the helm test pod and the secrets hook Job.
EVERY_POD = {"secrets": {"mode": "hook"}}


def images(manifest: Manifest) -> dict[str, str]:
    """<kind>/<name>/<container> -> image, for every container of every pod owner."""
    return {
        f"{objref(owner)}/{container['name']}": container["image"]
        for owner in manifest.pod_owners()
        for container in all_containers(owner)
    }


def test_every_pod_kind_is_covered(render: RenderFn) -> None:
    found = images(render(EVERY_POD))
    kinds = {ref.split("/")[0] for ref in found}
    assert kinds == {"StatefulSet", "Deployment", "Pod", "Job"}, found
    assert any(ref.endswith("/erlang-cookie") for ref in found), "the broker's init container is missing"


@pytest.mark.parametrize(
    ("registry", "overrides", "project", "rabbitmq"),
    [
        (
            "registry.example.com",
            {},
            f"registry.example.com/celery-rabbitmq/taskqueue:{APP_VERSION}",
            f"registry.example.com/rabbitmq:{RABBITMQ_TAG}",
        ),
        (
            "mirror.example.com:5000/hub",
            {"rabbitmq": {"image": {"repository": "docker.io/library/rabbitmq"}}},
            f"mirror.example.com:5000/hub/celery-rabbitmq/taskqueue:{APP_VERSION}",
            f"mirror.example.com:5000/hub/library/rabbitmq:{RABBITMQ_TAG}",
        ),
        (
            "registry.example.com",
            {"image": {"repository": "ghcr.io/acme/taskqueue", "tag": "1.2.3"}},
            "registry.example.com/acme/taskqueue:1.2.3",
            f"registry.example.com/rabbitmq:{RABBITMQ_TAG}",
        ),
    ],
    ids=["plain", "registry-with-port-and-path-replaces-docker-io", "replaces-ghcr"],
)
def test_global_image_registry_reaches_every_image(
    render: RenderFn, registry: str, overrides: dict[str, Any], project: str, rabbitmq: str
) -> None:
    manifest = render({**EVERY_POD, **overrides, "global": {"imageRegistry": registry}})
    found = images(manifest)
    expected = {ref: rabbitmq if ref.startswith("StatefulSet/") else project for ref in found}
    assert found == expected


def test_without_registry_images_are_as_given(default_manifest: Manifest) -> None:
    assert set(images(default_manifest).values()) == {
        f"celery-rabbitmq/taskqueue:{APP_VERSION}",
        f"rabbitmq:{RABBITMQ_TAG}",
    }


def test_rabbitmq_digest_alone_names_the_image(render: RenderFn) -> None:
    digest = "sha256:" + "c" * 64
    manifest = render({"rabbitmq": {"image": {"tag": "", "digest": digest}}})
    broker = {image for ref, image in images(manifest).items() if ref.startswith("StatefulSet/")}
    assert broker == {f"rabbitmq@{digest}"}
