"""The Celery worker Deployment: replicas, command, probes, warm shutdown, HPA, KEDA and PDB."""

from __future__ import annotations

import pytest

from taskqueue.settings_registry import BY_ENV
from tests.chart.rendering import Manifest, RenderFn, chart_values, env_of, env_value, pod_spec_of

WORKER_VALUES = chart_values()["worker"]
HEALTH_WORKER = ["taskqueue", "health", "worker"]


@pytest.mark.parametrize("replicas", [0, 1, 7])
def test_replica_override_honoured(render: RenderFn, replicas: int) -> None:
    worker = render({"worker": {"replicaCount": replicas}}).workload("worker")
    assert worker["kind"] == "Deployment"
    assert worker["spec"]["replicas"] == replicas


def test_worker_runs_taskqueue_worker(default_manifest: Manifest) -> None:
    container = default_manifest.container("worker")
    assert container.get("args") == ["worker"]
    assert "command" not in container, "the image's entrypoint `taskqueue` must stay in charge"


def test_worker_settings_reach_the_env(render: RenderFn) -> None:
    container = render(
        {
            "worker": {
                "pool": "prefork",
                "concurrency": 8,
                "prefetchMultiplier": 2,
                "taskTimeLimit": 900,
                "taskSoftTimeLimit": 840,
                "logTasks": True,
            },
            "celery": {"queueName": "arith"},
        }
    ).container("worker")
    expected = {
        "WORKER_POOL": "prefork",
        "WORKER_CONCURRENCY": "8",
        "WORKER_PREFETCH_MULTIPLIER": "2",
        "TASK_TIME_LIMIT": "900",
        "TASK_SOFT_TIME_LIMIT": "840",
        "WORKER_LOG_TASKS": "true",
        "QUEUE_NAME": "arith",
    }
    assert {name: env_value(container, name) for name in expected} == expected


def test_probes_call_taskqueue_health_worker(default_manifest: Manifest) -> None:
    container = default_manifest.container("worker")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == HEALTH_WORKER, probe


def test_heartbeat_file_is_on_the_writable_tmp(default_manifest: Manifest) -> None:
    container = default_manifest.container("worker")
    # The chart leaves the path to the package's default, which the probe reads too.
    assert "WORKER_HEALTH_FILE" not in env_of(container)
    assert str(BY_ENV["WORKER_HEALTH_FILE"].default).startswith("/tmp/")
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


def test_probe_period_lets_a_fresh_heartbeat_pass(default_manifest: Manifest) -> None:
    container = default_manifest.container("worker")
    interval, max_age = (int(env_value(container, n)) for n in ("HEALTH_INTERVAL", "HEALTH_MAX_AGE"))
    assert max_age > interval


@pytest.mark.parametrize("task_time_limit", [60, 300, 3600])
def test_grace_period_exceeds_the_task_time_limit(render: RenderFn, task_time_limit: int) -> None:
    manifest = render(
        {"worker": {"taskTimeLimit": task_time_limit, "taskSoftTimeLimit": task_time_limit - 30}}
    )
    grace = pod_spec_of(manifest.workload("worker"))["terminationGracePeriodSeconds"]
    assert grace > task_time_limit
    assert int(env_value(manifest.container("worker"), "TASK_TIME_LIMIT")) == task_time_limit


def test_defaults_run_inline_reserve_sixteen_and_log_no_line_per_task(default_manifest: Manifest) -> None:
    container = default_manifest.container("worker")
    expected = {"WORKER_POOL": "solo", "WORKER_CONCURRENCY": "1", "WORKER_PREFETCH_MULTIPLIER": "16",
                "WORKER_LOG_TASKS": "false"}
    assert {name: env_value(container, name) for name in expected} == expected
    # The grace period covers the sixteen reserved tasks, each within the hard limit, plus the margin.
    assert pod_spec_of(default_manifest.workload("worker"))["terminationGracePeriodSeconds"] == 16 * 300 + 30


@pytest.mark.parametrize(
    ("prefetch", "task_time_limit", "grace"), [(4, 300, 1230), (1, 300, 330), (2, 60, 150)]
)
def test_default_grace_period_covers_the_reserved_tasks(
    render: RenderFn, prefetch: int, task_time_limit: int, grace: int
) -> None:
    """The drain runs out what each process reserved, in turn: prefetch * taskTimeLimit, plus the margin
    (30 s), like the drain's own deadline and consumer_timeout."""
    manifest = render({"worker": {"prefetchMultiplier": prefetch, "taskTimeLimit": task_time_limit,
                                  "taskSoftTimeLimit": task_time_limit - 10}})
    assert pod_spec_of(manifest.workload("worker"))["terminationGracePeriodSeconds"] == grace


def test_explicit_grace_period_honoured(render: RenderFn) -> None:
    manifest = render({"worker": {"terminationGracePeriodSeconds": 1000}})
    assert pod_spec_of(manifest.workload("worker"))["terminationGracePeriodSeconds"] == 1000


def test_rolling_update_never_drops_below_the_replica_count(default_manifest: Manifest) -> None:
    strategy = default_manifest.workload("worker")["spec"].get("strategy", {})
    assert strategy.get("rollingUpdate", {}).get("maxUnavailable") == 0


def test_no_hpa_or_keda_by_default(default_manifest: Manifest) -> None:
    assert not default_manifest.find("HorizontalPodAutoscaler")
    assert not default_manifest.find("ScaledObject") and not default_manifest.find("TriggerAuthentication")


def test_hpa_targets_the_worker_and_owns_the_replica_count(render: RenderFn) -> None:
    manifest = render({"worker": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12}}})
    worker = manifest.workload("worker")
    hpa = manifest.one("HorizontalPodAutoscaler", component="worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": worker["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    # A replicas field would fight the HPA on every `helm upgrade`.
    assert "replicas" not in worker["spec"]
    scale_down = hpa["spec"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= WORKER_VALUES["taskTimeLimit"]


def test_keda_scaled_object_on_queue_length(render: RenderFn) -> None:
    manifest = render(
        {"worker": {"keda": {"enabled": True, "queueLength": 50}}, "celery": {"queueName": "arith"}}
    )
    worker = manifest.workload("worker")
    scaled = manifest.one("ScaledObject", component="worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert "replicas" not in worker["spec"]
    assert scaled["spec"]["minReplicaCount"] == WORKER_VALUES["keda"]["minReplicaCount"] == 1, (
        "scaling to zero skips the warm shutdown"
    )
    grace = pod_spec_of(worker)["terminationGracePeriodSeconds"]
    assert scaled["spec"]["cooldownPeriod"] >= WORKER_VALUES["taskTimeLimit"]
    assert scaled["spec"]["cooldownPeriod"] == grace
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == "arith"
    assert trigger["metadata"]["mode"] == "QueueLength" and trigger["metadata"]["value"] == "50"
    # The broker credentials reach KEDA from the Secret, never inline in the trigger's host URL.
    assert "@" not in trigger["metadata"].get("host", "")
    auth = manifest.one("TriggerAuthentication", name=trigger["authenticationRef"]["name"])
    refs = auth["spec"]["secretTargetRef"]
    # KEDA's rabbitmq scaler (>= 2.16) takes `username` and `password` from the TriggerAuthentication;
    # they are the very Secret keys the worker reads, and nothing credential-like sits in the metadata.
    worker_env = env_of(manifest.container("worker"))
    by_parameter = {r["parameter"]: {"name": r["name"], "key": r["key"]} for r in refs}
    assert by_parameter["password"] == worker_env["RABBITMQ_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert by_parameter["username"] == worker_env["RABBITMQ_USERNAME"]["valueFrom"]["secretKeyRef"]
    assert not {"usernameFromEnv", "passwordFromEnv", "username", "password"} & set(trigger["metadata"])


def test_keda_with_external_broker_user(render: RenderFn) -> None:
    external = {"host": "mq", "existingSecret": "mq-creds", "passwordKey": "pw"}
    for extra, user_ref in (
        ({"username": "app"}, {"name": "tq-celery-rabbitmq-broker-username", "key": "username"}),
        ({"usernameKey": "login"}, {"name": "mq-creds", "key": "login"}),
    ):
        manifest = render(
            {
                "rabbitmq": {"enabled": False},
                "externalBroker": {**external, **extra},
                "worker": {"keda": {"enabled": True}},
            }
        )
        refs = manifest.one("TriggerAuthentication")["spec"]["secretTargetRef"]
        by_parameter = {r["parameter"]: {"name": r["name"], "key": r["key"]} for r in refs}
        assert by_parameter == {"username": user_ref, "password": {"name": "mq-creds", "key": "pw"}}, extra


AMQP_PORT = [{"port": "amqp", "protocol": "TCP"}]


def keda_operator_rules(manifest: Manifest) -> list[dict[str, object]]:
    """The broker NetworkPolicy's ingress rules whose peers are outside this release's own pods."""
    policy = manifest.one("NetworkPolicy", component="rabbitmq")
    return [rule for rule in policy["spec"]["ingress"] if any("namespaceSelector" in p for p in rule["from"])]


def test_keda_operator_reaches_the_broker_through_the_network_policy(render: RenderFn) -> None:
    """KEDA's operator opens the AMQP connection of the queue-length query (trigger protocol amqp): with
    the default NetworkPolicy it must be let in, else scaling silently never happens."""
    manifest = render({"worker": {"keda": {"enabled": True}}})
    (trigger,) = manifest.one("ScaledObject", component="worker")["spec"]["triggers"]
    assert trigger["metadata"]["protocol"] == "amqp"
    keda_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
        "podSelector": {"matchLabels": {"app": "keda-operator"}},
    }
    assert keda_operator_rules(manifest) == [{"from": [keda_peer], "ports": AMQP_PORT}]


def test_keda_operator_elsewhere(render: RenderFn) -> None:
    manifest = render(
        {"worker": {"keda": {"enabled": True, "operatorNamespace": "scaling", "operatorPodLabels": None}}}
    )
    namespace_only = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "scaling"}}}
    assert keda_operator_rules(manifest) == [{"from": [namespace_only], "ports": AMQP_PORT}]


def test_no_keda_no_operator_rule(default_manifest: Manifest) -> None:
    assert keda_operator_rules(default_manifest) == []


def test_keda_explicit_cooldown_honoured(render: RenderFn) -> None:
    manifest = render({"worker": {"keda": {"enabled": True, "cooldownPeriod": 900}}})
    assert manifest.one("ScaledObject")["spec"]["cooldownPeriod"] == 900


def test_pdb_selects_the_worker_pods(default_manifest: Manifest) -> None:
    pdb = default_manifest.one("PodDisruptionBudget", component="worker")
    pod_labels = default_manifest.workload("worker")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == WORKER_VALUES["pdb"]["maxUnavailable"]


def test_pdb_can_be_disabled(render: RenderFn) -> None:
    assert not render({"worker": {"pdb": {"enabled": False}}}).find("PodDisruptionBudget", component="worker")


#: Queue settings every container that declares the work queue must share (RabbitMQ refuses a redeclare
#: with other arguments: PRECONDITION_FAILED).
QUEUE_VARIABLES = ("QUEUE_NAME", "QUEUE_TYPE", "QUEUE_DELIVERY_LIMIT")


def test_queue_defaults_reach_the_env(default_manifest: Manifest) -> None:
    container = default_manifest.container("worker")
    assert {name: env_value(container, name) for name in QUEUE_VARIABLES} == {
        "QUEUE_NAME": "celery", "QUEUE_TYPE": "quorum", "QUEUE_DELIVERY_LIMIT": "10",
    }
    assert env_value(container, "WORKER_REMOTE_CONTROL") == "true"


@pytest.mark.parametrize(("queue_type", "limit"), [("quorum", 3), ("classic", 1)])
def test_every_container_declares_the_queue_alike(render: RenderFn, queue_type: str, limit: int) -> None:
    celery = {"queueName": "arith", "queueType": queue_type, "queueDeliveryLimit": limit}
    manifest = render({"celery": celery})
    containers = [manifest.container(component) for component in ("worker", "producer", "flower")]
    containers += [pod["spec"]["containers"][0] for pod in manifest.test_pods()]
    assert len(containers) == 4
    expected = {"QUEUE_NAME": "arith", "QUEUE_TYPE": queue_type, "QUEUE_DELIVERY_LIMIT": str(limit)}
    for container in containers:
        assert {name: env_value(container, name) for name in QUEUE_VARIABLES} == expected, container["name"]


def test_remote_control_can_be_turned_off(render: RenderFn) -> None:
    container = render({"worker": {"remoteControl": False}}).container("worker")
    assert env_value(container, "WORKER_REMOTE_CONTROL") == "false"
