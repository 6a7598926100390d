"""Bad values are refused by `helm template` with a message naming the offending key (as a dotted path or
the schema's JSON pointer), whether the schema or a template-side rule catches them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import RenderErrorFn, deep_merge

EXTERNAL_OK = {
    "rabbitmq": {"enabled": False},
    "externalBroker": {"host": "mq", "username": "app", "existingSecret": "s"},
}


def dotted(path: str, value: Any) -> dict[str, Any]:
    """{"a.b.c": v} -> {"a": {"b": {"c": v}}}."""
    head, _, rest = path.partition(".")
    return {head: dotted(rest, value) if rest else value}


def names_key(stderr: str, key: str) -> bool:
    """The error names `key` as a dotted path (template rules) or a JSON pointer (schema errors)."""
    pointer = "/" + key.replace(".", "/")
    return key in stderr or pointer in stderr


# (id, overrides, keys the error must name)
BAD_VALUES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("negative-worker-replicas", dotted("worker.replicaCount", -1), ("worker.replicaCount",)),
    ("string-worker-replicas", dotted("worker.replicaCount", "two"), ("worker.replicaCount",)),
    ("string-rabbitmq-replicas", dotted("rabbitmq.replicaCount", "3"), ("rabbitmq.replicaCount",)),
    ("unknown-worker-key", dotted("worker.foo", 1), ("worker", "foo")),
    ("unknown-top-level-key", {"replicas": 3}, ("replicas",)),
    ("guest-broker-user", dotted("rabbitmq.auth.username", "guest"), ("rabbitmq.auth.username",)),
    ("guest-broker-user-uppercase", dotted("rabbitmq.auth.username", "GUEST"), ("rabbitmq.auth.username",)),
    ("flower-port-out-of-range", dotted("flower.service.port", 70000), ("flower.service.port",)),
    ("bad-pull-policy", dotted("image.pullPolicy", "Sometimes"), ("image.pullPolicy",)),
    ("bad-log-level", dotted("celery.logLevel", "verbose"), ("celery.logLevel",)),
    ("stream-queue-type", dotted("celery.queueType", "stream"), ("celery.queueType",)),
    ("zero-delivery-limit", dotted("celery.deliveryLimit", 0), ("celery.deliveryLimit",)),
    ("string-delivery-limit", dotted("celery.deliveryLimit", "10"), ("celery.deliveryLimit",)),
    ("queue-name-too-long-for-dead-letter", dotted("celery.queueName", "q" * 244), ("celery.queueName",)),
    ("string-remote-control", dotted("worker.remoteControl", "yes"), ("worker.remoteControl",)),
    (
        "grace-period-below-task-limit",
        dotted("worker.terminationGracePeriodSeconds", 100),
        ("worker.terminationGracePeriodSeconds",),
    ),
    (
        "soft-limit-not-below-hard-limit",
        dotted("worker.taskSoftTimeLimit", 400),
        ("worker.taskSoftTimeLimit",),
    ),
    (
        "hpa-and-keda-together",
        deep_merge(dotted("worker.autoscaling.enabled", True), dotted("worker.keda.enabled", True)),
        ("worker.autoscaling.enabled", "worker.keda.enabled"),
    ),
    ("keda-scales-to-zero", dotted("worker.keda.minReplicaCount", 0), ("worker.keda.minReplicaCount",)),
    ("hpa-scales-to-zero", dotted("worker.autoscaling.minReplicas", 0), ("worker.autoscaling.minReplicas",)),
    (
        "keda-cooldown-below-task-limit",
        deep_merge(dotted("worker.keda.enabled", True), dotted("worker.keda.cooldownPeriod", 60)),
        ("worker.keda.cooldownPeriod",),
    ),
    (
        "hpa-max-below-min",
        dotted("worker.autoscaling", {"enabled": True, "minReplicas": 5, "maxReplicas": 2}),
        ("worker.autoscaling.maxReplicas",),
    ),
    ("zero-producer-interval", dotted("producer.interval", 0), ("producer.interval",)),
    ("ingress-path-without-slash", dotted("flower.ingress.path", "flower"), ("flower.ingress.path",)),
    (
        "stale-heartbeat",
        dotted("worker.health", {"interval": 30, "maxAge": 10}),
        ("worker.health.maxAge",),
    ),
    (
        "stale-producer-heartbeat",
        dotted("producer.health", {"interval": 30, "maxAge": 30}),
        ("producer.health.maxAge",),
    ),
    ("producer-probe-unknown-key", dotted("producer.livenessProbe.period", 5), ("producer.livenessProbe",)),
    (
        "shared-flower-state",
        dotted("flower", {"replicaCount": 2, "persistence": {"enabled": True}}),
        ("flower.persistence.enabled",),
    ),
    ("no-broker-at-all", dotted("rabbitmq.enabled", False), ("externalBroker.existingSecret",)),
    (
        "external-guest-user",
        deep_merge(EXTERNAL_OK, dotted("externalBroker.username", "guest")),
        ("externalBroker.username",),
    ),
    (
        "broker-user-and-password-same-key",
        dotted("rabbitmq.auth.usernameKey", "rabbitmq-password"),
        ("rabbitmq.auth.usernameKey", "rabbitmq.auth.passwordKey"),
    ),
    ("empty-broker-username-key", dotted("rabbitmq.auth.usernameKey", ""), ("rabbitmq.auth.usernameKey",)),
    (
        "external-username-and-username-key",
        deep_merge(EXTERNAL_OK, dotted("externalBroker.usernameKey", "login")),
        ("externalBroker.username", "externalBroker.usernameKey"),
    ),
    (
        "external-no-user",
        deep_merge(EXTERNAL_OK, dotted("externalBroker.username", "")),
        ("externalBroker.username", "externalBroker.usernameKey"),
    ),
    (
        "external-user-and-password-same-key",
        deep_merge(
            deep_merge(EXTERNAL_OK, dotted("externalBroker.username", "")),
            dotted("externalBroker.usernameKey", "rabbitmq-password"),
        ),
        ("externalBroker.usernameKey", "externalBroker.passwordKey"),
    ),
    (
        "external-broker-with-bundled-broker",
        dotted("externalBroker", {"host": "mq", "username": "app", "existingSecret": "s"}),
        ("rabbitmq.enabled",),
    ),
    (
        "persistence-size-not-a-quantity",
        dotted("rabbitmq.persistence.size", "lots"),
        ("rabbitmq.persistence.size",),
    ),
]


def test_enough_bad_values() -> None:
    assert len(BAD_VALUES) >= 12


def test_external_baseline_renders(render: Any) -> None:
    """The external-broker cases change one key of a valid set: the baseline itself must render."""
    assert render(EXTERNAL_OK).objects


@pytest.mark.parametrize(
    ("overrides", "keys"), [(o, k) for _, o, k in BAD_VALUES], ids=[i for i, _, _ in BAD_VALUES]
)
def test_bad_value_is_refused_naming_the_key(
    render_error: RenderErrorFn, overrides: dict[str, Any], keys: tuple[str, ...]
) -> None:
    stderr = render_error(overrides)
    missing = [key for key in keys if not names_key(stderr, key)]
    assert not missing, f"refused, but the error does not name {missing}:\n{stderr}"
