"""Bad values are refused by `helm template` with a message naming the offending key (as a dotted path or
the schema's JSON pointer), whether the schema or a template-side rule catches them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.chart.rendering import (
    CHART_DIR,
    HELM_VERSIONS,
    Helm,
    HelmFailed,
    RenderErrorFn,
    deep_merge,
    find_helm,
)

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
    ("zero-delivery-limit", dotted("celery.queueDeliveryLimit", 0), ("celery.queueDeliveryLimit",)),
    ("string-delivery-limit", dotted("celery.queueDeliveryLimit", "10"), ("celery.queueDeliveryLimit",)),
    ("zero-delivery-limit-former-name", dotted("celery.deliveryLimit", 0), ("celery.deliveryLimit",)),
    ("string-flower-port-former-name", dotted("flower.containerPort", "8080"), ("flower.containerPort",)),
    ("module-path-with-slash", dotted("worker.taskModules", ["app/tasks"]), ("worker.taskModules",)),
    ("zero-broker-connection-timeout", dotted("celery.brokerConnectionTimeout", 0),
     ("celery.brokerConnectionTimeout",)),
    ("queue-name-too-long-for-dead-letter", dotted("celery.queueName", "q" * 244), ("celery.queueName",)),
    ("string-remote-control", dotted("worker.remoteControl", "yes"), ("worker.remoteControl",)),
    (
        "grace-period-below-task-limit",
        dotted("worker.terminationGracePeriodSeconds", 100),
        ("worker.terminationGracePeriodSeconds",),
    ),
    (
        "solo-pool-with-concurrency",
        dotted("worker.concurrency", 4),
        ("worker.concurrency",),
    ),
    (
        "unknown-pool",
        dotted("worker.pool", "threads"),
        ("worker.pool",),
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
    assert len(BAD_VALUES) == 43


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


# (id, overrides, fragments the one error message must contain: the key, the value, and the reason)
REFUSED_WITH_REASON: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    (
        "solo-pool-runs-one-task-at-a-time",
        dotted("worker.concurrency", 4),
        ("worker.concurrency must be 1 with worker.pool solo (got 4)", "set worker.pool prefork"),
    ),
    (
        "empty-rabbitmq-tag",
        dotted("rabbitmq.image.tag", ""),
        ("rabbitmq.image.tag must not be empty", "it would render `rabbitmq:`"),
    ),
    (
        "two-node-cluster",
        dotted("rabbitmq.replicaCount", 2),
        ("rabbitmq.replicaCount=2 is refused: two nodes cannot keep a quorum through the loss of one",),
    ),
    (
        "broker-pdb-takes-a-quorum-of-3",
        dotted("rabbitmq", {"replicaCount": 3, "pdb": {"maxUnavailable": 2}}),
        ("rabbitmq.pdb.maxUnavailable (2, i.e. 2 of 3 nodes) lets a drain take down a quorum", "= 1 node(s)"),
    ),
    (
        "broker-pdb-percent-takes-a-quorum-of-5",
        dotted("rabbitmq", {"replicaCount": 5, "pdb": {"maxUnavailable": "50%"}}),
        (
            "rabbitmq.pdb.maxUnavailable (50%, i.e. 3 of 5 nodes) lets a drain take down a quorum",
            "= 2 node(s)",
        ),
    ),
    (
        "broker-pdb-blocks-drains",
        dotted("rabbitmq", {"replicaCount": 3, "pdb": {"maxUnavailable": 0}}),
        ("rabbitmq.pdb.maxUnavailable (0) must let at least one node be evicted: 0 blocks every node drain",),
    ),
    (
        "worker-pdb-blocks-drains",
        dotted("worker.pdb.maxUnavailable", 0),
        ("worker.pdb.maxUnavailable (0) must let at least one worker be evicted: 0 blocks every node drain",),
    ),
    (
        "worker-pdb-zero-percent",
        dotted("worker.pdb.maxUnavailable", "0%"),
        ("worker.pdb.maxUnavailable (0%) must let at least one worker be evicted",),
    ),
    (
        "exposed-flower-without-flower-from",
        dotted("flower.ingress.enabled", True),
        ("networkPolicy.flowerFrom must list who reaches Flower", "serves /metrics without authentication"),
    ),
    (
        "load-balanced-flower-without-flower-from",
        dotted("flower.service.type", "LoadBalancer"),
        ("networkPolicy.flowerFrom must list who reaches Flower", "flower.service.type=LoadBalancer"),
    ),
    (
        "cluster-domain-too-long-for-node-names",
        dotted("clusterDomain", ".".join(["d" * 60] * 4)),
        ("clusterDomain (", "is too long for the RabbitMQ node names"),
    ),
]


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [(o, f) for _, o, f in REFUSED_WITH_REASON],
    ids=[i for i, _, _ in REFUSED_WITH_REASON],
)
def test_refused_with_the_key_and_the_reason(
    render_error: RenderErrorFn, overrides: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    """Values the schema accepts but the release could not live with: one message per problem, naming the
    key and why (not a bare schema `'not' failed`)."""
    stderr = render_error(overrides)
    missing = [fragment for fragment in fragments if fragment not in stderr]
    assert not missing, f"refused, but the message lacks {missing}:\n{stderr}"
    assert "'not' failed" not in stderr


@pytest.mark.parametrize(
    "overrides",
    [
        dotted("rabbitmq", {"replicaCount": 3, "pdb": {"maxUnavailable": 1}}),
        dotted("rabbitmq", {"replicaCount": 5, "pdb": {"maxUnavailable": 2}}),
        dotted("rabbitmq", {"replicaCount": 3, "pdb": {"maxUnavailable": "33%"}}),
        dotted("worker.pdb.maxUnavailable", "25%"),
        dotted("rabbitmq.image", {"tag": "", "digest": "sha256:" + "b" * 64}),
    ],
    ids=["3-nodes-1", "5-nodes-2", "3-nodes-33-percent", "worker-25-percent", "digest-without-tag"],
)
def test_the_limits_themselves_render(render: Any, overrides: dict[str, Any]) -> None:
    assert render(overrides).objects


def test_every_problem_is_reported_at_once(render_error: RenderErrorFn) -> None:
    """One render lists every problem, so a values file is fixed in one go."""
    overrides = deep_merge(
        deep_merge(dotted("rabbitmq.replicaCount", 2), dotted("worker.pdb.maxUnavailable", 0)),
        deep_merge(dotted("rabbitmq.auth.username", "guest"), dotted("rabbitmq.image.tag", "")),
    )
    stderr = render_error(overrides)
    assert "4 value problem(s)" in stderr
    for key in (
        "rabbitmq.replicaCount=2",
        "worker.pdb.maxUnavailable",
        "rabbitmq.auth.username",
        "rabbitmq.image.tag",
    ):
        assert f"\n- {key}" in stderr, key


@pytest.mark.parametrize("helm", HELM_VERSIONS)
def test_two_independent_problems_make_one_failure_naming_both(
    render_error: RenderErrorFn, helm: str
) -> None:
    """A broker rule and a worker rule broken at once: _validate.tpl collects both and fails once, one line
    per problem, each starting with its values key (helm stops at the first `fail`, so a second one would
    hide the other problem until the first is fixed)."""
    overrides = deep_merge(
        dotted("rabbitmq.auth.username", "guest"),
        dotted("worker", {"taskTimeLimit": 300, "taskSoftTimeLimit": 400}),
    )
    stderr = render_error(overrides, helm=helm)
    lines = stderr.splitlines()
    starts = [index for index, line in enumerate(lines) if line.endswith("value problem(s):")]
    assert len(starts) == 1, stderr
    # The blank line after the list: no third problem.
    assert lines[starts[0] : starts[0] + 4] == [
        "2 value problem(s):",
        '- rabbitmq.auth.username must not be "guest": RabbitMQ refuses guest from other hosts; '
        "choose another user",
        "- worker.taskSoftTimeLimit (400) must be below worker.taskTimeLimit (300)",
        "",
    ]
    assert lines[starts[0] - 1] == (
        "Error: execution error at (celery-rabbitmq/templates/validate/validate.yaml:4:4): "
    )


@pytest.mark.parametrize("helm", HELM_VERSIONS)
def test_the_problem_list_comes_before_any_other_template_error(tmp_path: Path, helm: str) -> None:
    """Helm stops at the first template that fails: the validation renders first, so a template that
    would fail on the same bad values (here one that always fails, named to render early) cannot hide
    the list."""
    executable = find_helm(helm)
    if executable is None:
        pytest.skip(f"{helm} not found: run scripts/install-helm.sh .venv")
    chart = tmp_path / CHART_DIR.name
    shutil.copytree(CHART_DIR, chart)
    (chart / "templates" / "worker-zz-broken.yaml").write_text('{{ required "a template error" nil }}\n')
    with pytest.raises(HelmFailed) as failed:
        Helm(helm, executable).run(["template", "r", str(chart), "--set", "rabbitmq.replicaCount=2"])
    assert "1 value problem(s):\n- rabbitmq.replicaCount=2 is refused" in failed.value.stderr
    assert "a template error" not in failed.value.stderr
