"""Pods roll when the configuration or the Secret they use changes (checksum annotations), and only then."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import Manifest, RenderFn

COMPONENTS = ("rabbitmq", "worker", "producer", "flower")


def pod_annotations(manifest: Manifest, component: str) -> dict[str, str]:
    workload = manifest.workload(component)
    return dict(workload["spec"]["template"]["metadata"].get("annotations") or {})


def rolled(before: Manifest, after: Manifest) -> set[str]:
    return {c for c in COMPONENTS if pod_annotations(before, c) != pod_annotations(after, c)}


def test_pods_carry_checksums(default_manifest: Manifest) -> None:
    for component in COMPONENTS:
        checksums = [k for k in pod_annotations(default_manifest, component) if k.startswith("checksum/")]
        assert checksums, f"{component} pods carry no checksum annotation"


@pytest.mark.parametrize(
    ("change", "must_roll"),
    [
        (
            {"rabbitmq": {"auth": {"password": "a-new-broker-password"}}},
            {"rabbitmq", "worker", "producer", "flower"},
        ),
        (
            {"rabbitmq": {"auth": {"existingSecret": "other-secret"}}},
            {"rabbitmq", "worker", "producer", "flower"},
        ),
        (
            {"rabbitmq": {"auth": {"username": "another-user"}}},
            {"rabbitmq", "worker", "producer", "flower"},
        ),
        (
            {"rabbitmq": {"auth": {"existingSecret": "other-secret", "usernameKey": "login"}}},
            {"rabbitmq", "worker", "producer", "flower"},
        ),
        ({"flower": {"auth": {"password": "a-new-flower-password"}}}, {"flower"}),
        ({"rabbitmq": {"memoryHighWatermark": 0.5}}, {"rabbitmq"}),
        # consumer_timeout follows the task time limit: the broker must restart with it.
        ({"worker": {"taskTimeLimit": 7200, "taskSoftTimeLimit": 7000}}, {"rabbitmq"}),
    ],
    ids=[
        "broker-password",
        "broker-existing-secret",
        "broker-username",
        "broker-username-key",
        "flower-password",
        "broker-config",
        "task-time-limit",
    ],
)
def test_changed_config_or_secret_rolls_its_pods(
    render: RenderFn, default_manifest: Manifest, change: dict[str, Any], must_roll: set[str]
) -> None:
    assert must_roll <= rolled(default_manifest, render(change))


@pytest.mark.parametrize(
    "change",
    [{"worker": {"replicaCount": 5}}, {"producer": {"replicaCount": 2}}, {"flower": {"replicaCount": 2}}],
    ids=["worker-replicas", "producer-replicas", "flower-replicas"],
)
def test_unrelated_change_rolls_nothing(
    render: RenderFn, default_manifest: Manifest, change: dict[str, Any]
) -> None:
    assert rolled(default_manifest, render(change)) == set()


EXTERNAL_BROKER: dict[str, Any] = {"host": "mq", "existingSecret": "mq-creds"}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"username": "app"}, {"username": "app2"}),
        ({"usernameKey": "login"}, {"usernameKey": "user"}),
        ({"username": "app"}, {"usernameKey": "login"}),
    ],
    ids=["external-username", "external-username-key", "external-value-to-secret"],
)
def test_external_broker_user_change_rolls_the_clients(
    render: RenderFn, before: dict[str, Any], after: dict[str, Any]
) -> None:
    def external(user: dict[str, Any]) -> dict[str, Any]:
        return {"rabbitmq": {"enabled": False}, "externalBroker": {**EXTERNAL_BROKER, **user}}

    clients = {"worker", "producer", "flower"}
    old, new = render(external(before)), render(external(after))
    changed = {c for c in clients if pod_annotations(old, c) != pod_annotations(new, c)}
    assert changed == clients


def test_flower_password_does_not_roll_the_worker(render: RenderFn, default_manifest: Manifest) -> None:
    changed = render({"flower": {"auth": {"password": "a-new-flower-password"}}})
    assert "worker" not in rolled(default_manifest, changed)
