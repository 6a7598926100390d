"""The bundled RabbitMQ: StatefulSet, image, persistence, probes, Services, clustering, configuration and
credentials."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from tests.chart.rendering import (
    CHART_DIR,
    DEFAULT_VALUES,
    NAMESPACE,
    Manifest,
    RenderCache,
    RenderErrorFn,
    RenderFn,
    all_containers,
    chart_values,
    env_of,
    env_value,
    pod_spec_of,
)

RABBITMQ_VALUES = chart_values()["rabbitmq"]
CLUSTERED = {"rabbitmq": {"replicaCount": 3}}


def rabbitmq_conf(manifest: Manifest) -> dict[str, str]:
    """rabbitmq.conf of the broker's ConfigMap as key -> value (comments dropped)."""
    config = manifest.one("ConfigMap", component="rabbitmq")["data"]["rabbitmq.conf"]
    lines = [line for line in config.splitlines() if "=" in line and not line.lstrip().startswith("#")]
    pairs = (line.split("=", 1) for line in lines)
    return {key.strip(): value.strip() for key, value in pairs}


def enabled_plugins(manifest: Manifest) -> set[str]:
    text = manifest.one("ConfigMap", component="rabbitmq")["data"]["enabled_plugins"]
    return set(re.findall(r"[a-z_0-9]+", text))


def secret_text(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def test_rabbitmq_is_a_statefulset_with_a_pinned_official_image(default_manifest: Manifest) -> None:
    statefulset = default_manifest.workload("rabbitmq")
    assert statefulset["kind"] == "StatefulSet"
    for container in all_containers(statefulset):
        repository, _, tag = container["image"].partition(":")
        assert repository == RABBITMQ_VALUES["image"]["repository"], container["image"]
        assert tag == RABBITMQ_VALUES["image"]["tag"], container["image"]
        assert re.match(r"^\d+\.\d+\.\d+", tag) and "latest" not in tag, f"unpinned RabbitMQ tag {tag!r}"


def test_rabbitmq_image_digest_pins_the_image(render: RenderFn) -> None:
    digest = "sha256:" + "a" * 64
    manifest = render({"rabbitmq": {"image": {"digest": digest}}})
    images = {c["image"] for c in pod_spec_of(manifest.workload("rabbitmq"))["containers"]}
    assert images == {f"rabbitmq:{RABBITMQ_VALUES['image']['tag']}@{digest}"}


@pytest.mark.parametrize("replicas", [1, 3, 5])
def test_rabbitmq_replica_count_honoured(render: RenderFn, replicas: int) -> None:
    assert (
        render({"rabbitmq": {"replicaCount": replicas}}).workload("rabbitmq")["spec"]["replicas"] == replicas
    )


def test_persistence_uses_a_volume_claim_template(render: RenderFn) -> None:
    manifest = render({"rabbitmq": {"persistence": {"size": "20Gi", "storageClass": "fast-ssd"}}})
    statefulset = manifest.workload("rabbitmq")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert "data" not in {v["name"] for v in pod_spec_of(statefulset)["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in pod_spec_of(statefulset)["containers"][0]["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/rabbitmq"


def test_default_persistence_uses_the_cluster_default_storage_class(default_manifest: Manifest) -> None:
    (claim,) = default_manifest.workload("rabbitmq")["spec"]["volumeClaimTemplates"]
    assert "storageClassName" not in claim["spec"]
    assert claim["spec"]["resources"]["requests"]["storage"] == RABBITMQ_VALUES["persistence"]["size"]


def test_persistence_off_uses_an_empty_dir(render: RenderFn) -> None:
    statefulset = render({"rabbitmq": {"persistence": {"enabled": False}}}).workload("rabbitmq")
    assert not statefulset["spec"].get("volumeClaimTemplates")
    volumes = {v["name"]: v for v in pod_spec_of(statefulset)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod_spec_of(statefulset)["containers"][0]["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/var/lib/rabbitmq"]]


def test_probes_use_rabbitmq_diagnostics(default_manifest: Manifest) -> None:
    container = default_manifest.container("rabbitmq", "rabbitmq")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[0] == "rabbitmq-diagnostics", f"{probe}: {command}"


def test_broker_service_serves_amqp_management_and_metrics(default_manifest: Manifest) -> None:
    service = default_manifest.broker_service()
    amqp = next(p for p in service["spec"]["ports"] if p["name"] == "amqp")
    assert amqp["port"] == 5672
    statefulset = default_manifest.workload("rabbitmq")
    container_ports = {
        p["name"]: p["containerPort"] for p in pod_spec_of(statefulset)["containers"][0]["ports"]
    }
    assert amqp["targetPort"] == "amqp" and container_ports["amqp"] == 5672
    assert {"management", "metrics"} <= {p["name"] for p in service["spec"]["ports"]}


def test_broker_service_name_override(render: RenderFn) -> None:
    manifest = render({"rabbitmq": {"service": {"name": "broker"}}})
    assert manifest.broker_service()["metadata"]["name"] == "broker"
    host = env_value(manifest.container("worker"), "RABBITMQ_SERVICE_SERVICE_HOST")
    assert host.split(".")[:2] == ["broker", NAMESPACE]


def test_headless_service_governs_the_statefulset(default_manifest: Manifest) -> None:
    statefulset = default_manifest.workload("rabbitmq")
    headless = default_manifest.one("Service", name=statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert (
        headless["spec"]["selector"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    )


def test_single_node_has_no_clustering_rbac_nor_quorum_default(default_manifest: Manifest) -> None:
    assert RABBITMQ_VALUES["replicaCount"] == 1
    assert not default_manifest.find("Role") and not default_manifest.find("RoleBinding")
    assert not default_manifest.find("PodDisruptionBudget", component="rabbitmq")
    conf = rabbitmq_conf(default_manifest)
    assert "cluster_formation.peer_discovery_backend" not in conf
    assert conf["default_queue_type"] == "classic"


def test_cluster_gets_peer_discovery_rbac_and_quorum_queues(render: RenderFn) -> None:
    manifest = render(CLUSTERED)
    statefulset = manifest.workload("rabbitmq")
    account = pod_spec_of(statefulset)["serviceAccountName"]
    role = manifest.one("Role", component="rabbitmq")
    binding = manifest.one("RoleBinding", component="rabbitmq")
    assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] == role["metadata"]["name"]
    assert {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE} in binding["subjects"]
    assert manifest.has("ServiceAccount", name=account)
    endpoint_rules = [r for r in role["rules"] if "endpoints" in r["resources"]]
    assert endpoint_rules and all(set(r["verbs"]) <= {"get", "list", "watch"} for r in endpoint_rules)

    conf = rabbitmq_conf(manifest)
    assert conf["cluster_formation.peer_discovery_backend"] == "rabbit_peer_discovery_k8s"
    assert conf["cluster_formation.k8s.service_name"] == statefulset["spec"]["serviceName"]
    assert conf["default_queue_type"] == "quorum"
    assert "rabbitmq_peer_discovery_k8s" in enabled_plugins(manifest)
    assert manifest.one("PodDisruptionBudget", component="rabbitmq")["spec"]["maxUnavailable"] == 1


def test_explicit_queue_type_wins(render: RenderFn) -> None:
    manifest = render({"rabbitmq": {"replicaCount": 3, "defaultQueueType": "classic"}})
    assert rabbitmq_conf(manifest)["default_queue_type"] == "classic"


def test_management_and_prometheus_plugins_enabled(default_manifest: Manifest) -> None:
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= enabled_plugins(default_manifest)


@pytest.mark.parametrize(
    ("task_time_limit", "prefetch"),
    [(300, 1), (3600, 1), (3600, 4), (7200, 2)],
    ids=["default-limit", "1h", "1h-prefetch4", "2h-prefetch2"],
)
def test_consumer_timeout_follows_the_task_time_limit(
    render: RenderFn, task_time_limit: int, prefetch: int
) -> None:
    """A late-acked message stays unacked while up to `prefetch` tasks of `task_time_limit` run: the broker
    must not close the worker's channel before (PRECONDITION_FAILED ... acknowledgement timed out)."""
    worker_values = {"taskTimeLimit": task_time_limit, "taskSoftTimeLimit": task_time_limit - 60}
    manifest = render({"worker": {**worker_values, "prefetchMultiplier": prefetch}})
    timeout_ms = int(rabbitmq_conf(manifest)["consumer_timeout"])
    worker = manifest.container("worker")
    assert int(env_value(worker, "TASK_TIME_LIMIT")) == task_time_limit
    assert timeout_ms > prefetch * task_time_limit * 1000
    assert timeout_ms >= 30 * 60 * 1000, "never below RabbitMQ's own default"
    margin = RABBITMQ_VALUES["consumerTimeoutMarginSeconds"]
    assert timeout_ms == max(1_800_000, (prefetch * task_time_limit + margin) * 1000)


def test_generated_password_and_cookie_are_random_and_never_guest(render_cache: RenderCache) -> None:
    auth = RABBITMQ_VALUES["auth"]
    values = []
    for _ in range(2):
        manifest = render_cache.render_fresh(DEFAULT_VALUES)
        secrets = manifest.find("Secret", component="rabbitmq")
        password = secret_text(
            next(s for s in secrets if auth["passwordKey"] in s["data"]), auth["passwordKey"]
        )
        cookie = secret_text(
            next(s for s in secrets if auth["erlangCookieKey"] in s["data"]), auth["erlangCookieKey"]
        )
        # The lengths the chart generates (randAlphaNum): 32 for the password, 64 for the cookie.
        assert len(password) == 32 and password.isalnum() and password != "guest"
        assert len(cookie) == 64 and cookie.isalnum()
        values.append((password, cookie))
    assert values[0][0] != values[1][0] and values[0][1] != values[1][1], (
        "generated credentials are not random"
    )


def test_generated_secrets_are_kept_across_upgrades_by_lookup() -> None:
    """`helm template` has no cluster, so lookup returns nothing here: check the template reuses the stored
    Secret's data (lookup) before generating, for the password, the cookie and Flower's password."""
    helpers = (CHART_DIR / "templates" / "_secrets.tpl").read_text()
    generator = re.search(
        r'define "celery-rabbitmq.secretValue".*?{{-? end -}}\s*{{-? end -}}', helpers, re.S
    )
    assert generator, "the secretValue helper is gone"
    body = generator.group(0)
    assert re.search(r'lookup "v1" "Secret" \.ctx\.Release\.Namespace \.name', body)
    assert body.index("lookup") < body.index("randAlphaNum"), "must prefer the stored value over a new one"
    for template in ("rabbitmq-secret.yaml", "flower-secret.yaml"):
        text = (CHART_DIR / "templates" / template).read_text()
        assert "celery-rabbitmq.secretValue" in text, f"{template} does not use the lookup-preserving helper"
        assert "randAlphaNum" not in text, f"{template} generates a value that changes on every upgrade"


def test_explicit_password_is_stored_as_given(render: RenderFn) -> None:
    manifest = render({"rabbitmq": {"auth": {"password": "s3cret-broker-pass", "erlangCookie": "c" * 40}}})
    secret = manifest.one("Secret", name="tq-celery-rabbitmq-rabbitmq")
    assert secret_text(secret, RABBITMQ_VALUES["auth"]["passwordKey"]) == "s3cret-broker-pass"


def test_existing_secrets_replace_the_generated_ones(render: RenderFn) -> None:
    manifest = render(
        {
            "rabbitmq": {
                "auth": {"existingSecret": "broker-creds", "existingErlangCookieSecret": "broker-cookie"}
            }
        }
    )
    assert not manifest.find("Secret", component="rabbitmq"), (
        "the chart must not render its own broker Secrets"
    )
    statefulset = manifest.workload("rabbitmq")
    password_ref = env_of(manifest.container("rabbitmq", "rabbitmq"))["RABBITMQ_DEFAULT_PASS"]["valueFrom"]
    assert password_ref["secretKeyRef"]["name"] == "broker-creds"
    secret_volumes = {v["secret"]["secretName"] for v in pod_spec_of(statefulset)["volumes"] if "secret" in v}
    assert "broker-cookie" in secret_volumes
    worker_ref = env_of(manifest.container("worker"))["RABBITMQ_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert worker_ref["name"] == "broker-creds"


def test_default_user_is_not_guest(default_manifest: Manifest) -> None:
    ref = env_of(default_manifest.container("rabbitmq", "rabbitmq"))["RABBITMQ_DEFAULT_USER"]["valueFrom"]
    secret = default_manifest.one("Secret", name=ref["secretKeyRef"]["name"])
    user = secret_text(secret, ref["secretKeyRef"]["key"])
    assert user == RABBITMQ_VALUES["auth"]["username"] and user.lower() != "guest"


def assert_user_read_from(manifest: Manifest, secret_key_ref: dict[str, str]) -> None:
    """The broker's default user and every client's user come from this secretKeyRef."""
    broker_env = env_of(manifest.container("rabbitmq", "rabbitmq"))
    assert broker_env["RABBITMQ_DEFAULT_USER"]["valueFrom"]["secretKeyRef"] == secret_key_ref
    for component in ("worker", "producer", "flower"):
        client_env = env_of(manifest.container(component))
        assert client_env["RABBITMQ_USERNAME"]["valueFrom"]["secretKeyRef"] == secret_key_ref, component


def test_user_and_password_share_the_generated_secret(render: RenderFn) -> None:
    """The user travels like the password: one Secret, two keys, read by the broker and every client."""
    manifest = render({"rabbitmq": {"auth": {"username": "jobs", "usernameKey": "user"}}})
    secret = manifest.one("Secret", name="tq-celery-rabbitmq-rabbitmq")
    assert secret_text(secret, "user") == "jobs"
    assert secret_text(secret, RABBITMQ_VALUES["auth"]["passwordKey"])
    expected = {"name": "tq-celery-rabbitmq-rabbitmq", "key": "user"}
    assert_user_read_from(manifest, expected)


def test_existing_secret_supplies_the_user(render: RenderFn) -> None:
    """With existingSecret the user is read from it under usernameKey (rabbitmq.auth.username unused)."""
    manifest = render({"rabbitmq": {"auth": {"existingSecret": "broker-creds", "usernameKey": "login"}}})
    expected = {"name": "broker-creds", "key": "login"}
    assert_user_read_from(manifest, expected)
    stored = {secret_text(s, k) for s in manifest.find("Secret") for k in s.get("data") or {}}
    assert RABBITMQ_VALUES["auth"]["username"] not in stored, "rabbitmq.auth.username is unused here"


def test_rabbitmq_disabled_renders_no_broker(render: RenderFn) -> None:
    external = {"host": "mq.example.com", "username": "app", "existingSecret": "mq"}
    manifest = render({"rabbitmq": {"enabled": False}, "externalBroker": external})
    assert not manifest.find(component="rabbitmq")


def test_node_names_match_peer_discovery_and_the_cli(render: RenderFn) -> None:
    """Server, CLI probes and peer discovery must agree on the node name: RabbitMQ >= 4.1 derives the seed
    node by replacing the ordinal in this node's own name, < 4.1 appends hostname_suffix to the pod
    hostname; the CLI (probes, preStop) targets RABBITMQ_NODENAME with long names from the same env."""
    manifest = render(CLUSTERED)
    statefulset = manifest.workload("rabbitmq")
    env = env_of(manifest.container("rabbitmq", "rabbitmq"))
    assert env["RABBITMQ_USE_LONGNAME"]["value"] == "true"
    headless, domain = statefulset["spec"]["serviceName"], chart_values()["clusterDomain"]
    # The pod's FQDN under the governing headless Service (what /etc/hosts and DNS resolve).
    assert (
        env["RABBITMQ_NODENAME"]["value"]
        == f"rabbit@$(MY_POD_NAME).{headless}.$(MY_POD_NAMESPACE).svc.{domain}"
    )
    conf = rabbitmq_conf(manifest)
    assert conf["cluster_formation.k8s.hostname_suffix"] == f".{headless}.{NAMESPACE}.svc.{domain}"
    assert conf["cluster_formation.k8s.service_name"] == headless
    defined = list(env)
    for var in ("MY_POD_NAME", "MY_POD_NAMESPACE"):
        assert defined.index(var) < defined.index("RABBITMQ_NODENAME"), f"$({var}) must be defined before use"
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"


def test_cluster_balances_quorum_queue_leaders(render: RenderFn, default_manifest: Manifest) -> None:
    assert rabbitmq_conf(render(CLUSTERED))["queue_leader_locator"] == "balanced"
    assert "queue_leader_locator" not in rabbitmq_conf(default_manifest)


def test_every_path_rabbitmq_writes_is_a_volume(default_manifest: Manifest) -> None:
    """Read-only root filesystem: data/cookie/$HOME, logs (erl_crash.dump) and /tmp are volumes; the
    configuration is where the image's RabbitMQ reads it (/etc/rabbitmq/rabbitmq.conf, enabled_plugins)."""
    statefulset = default_manifest.workload("rabbitmq")
    container = default_manifest.container("rabbitmq", "rabbitmq")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert {"/var/lib/rabbitmq", "/var/log/rabbitmq", "/tmp", "/etc/rabbitmq"} <= set(mounts)
    volumes = {v["name"]: v for v in pod_spec_of(statefulset)["volumes"]}
    config = volumes[mounts["/etc/rabbitmq"]["name"]]["configMap"]
    configmap = default_manifest.one("ConfigMap", name=config["name"])
    assert {"rabbitmq.conf", "enabled_plugins"} <= set(configmap["data"])
    env = env_of(container)
    assert "RABBITMQ_CONFIG_FILE" not in env and "RABBITMQ_ENABLED_PLUGINS_FILE" not in env


def test_erlang_cookie_is_installed_owner_only_before_the_broker_starts(default_manifest: Manifest) -> None:
    statefulset = default_manifest.workload("rabbitmq")
    pod = pod_spec_of(statefulset)
    (init,) = pod["initContainers"]
    script = init["command"][-1]
    assert "/var/lib/rabbitmq/.erlang.cookie" in script and "chmod 0400" in script
    assert init["image"] == default_manifest.container("rabbitmq", "rabbitmq")["image"]
    # Non-root: the copy relies on the pod's fsGroup to read the Secret and write the data volume.
    assert init["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == 999
    assert "/var/lib/rabbitmq" in {m["mountPath"] for m in init["volumeMounts"]}
    assert "RABBITMQ_ERLANG_COOKIE" not in env_of(default_manifest.container("rabbitmq", "rabbitmq"))


@pytest.mark.parametrize("grace", [120, 20])
def test_prestop_wait_leaves_time_for_the_orderly_shutdown(render: RenderFn, grace: int) -> None:
    manifest = render({"rabbitmq": {"replicaCount": 3, "terminationGracePeriodSeconds": grace}})
    container = manifest.container("rabbitmq", "rabbitmq")
    command = container["lifecycle"]["preStop"]["exec"]["command"][-1]
    match = re.search(r"await_online_quorum_plus_one -t (\d+)", command)
    assert match, command
    wait = int(match.group(1))
    assert 0 < wait < grace and grace - wait >= min(30, grace // 2)


def test_scale_down_of_a_running_cluster_is_guarded() -> None:
    """A StatefulSet scale-down leaves the removed nodes as cluster members and quorum queue replicas: the
    validation refuses it against a live release (lookup) unless rabbitmq.allowScaleDown."""
    rules = (CHART_DIR / "templates" / "_validate.tpl").read_text()
    guard = re.search(r"if and \(not \$r\.allowScaleDown\).*?{{- end -}}\s*{{- end -}}", rules, re.S)
    assert guard, "the scale-down rule is gone from _validate.tpl"
    assert 'lookup "apps/v1" "StatefulSet"' in guard.group(0)
    assert "$e = append $e" in guard.group(0) and "rabbitmq.replicaCount" in guard.group(0)


def test_allow_scale_down_renders(render: RenderFn) -> None:
    manifest = render({"rabbitmq": {"replicaCount": 1, "allowScaleDown": True}})
    assert manifest.workload("rabbitmq")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("limit", "watermark"),
    [
        ("512Mi", 322122547),  # floor(0.6 * 536870912)
        ("1Gi", 644245094),  # floor(0.6 * 1073741824)
        ("1G", 600000000),
        ("500M", 300000000),
        ("1.5Gi", 966367641),  # floor(0.6 * 1610612736)
        ("4Gi", 2576980377),
        (1073741824, 644245094),  # a plain number of bytes
    ],
)
def test_memory_watermark_is_absolute_from_the_memory_limit(
    render: RenderFn, limit: str | int, watermark: int
) -> None:
    """RabbitMQ may not see the container's cgroup limit (and would take the node's memory for a relative
    watermark): the chart writes memoryHighWatermark x the container's memory limit, in bytes."""
    manifest = render({"rabbitmq": {"resources": {"limits": {"memory": limit}}}})
    conf = rabbitmq_conf(manifest)
    assert conf["vm_memory_high_watermark.absolute"] == str(watermark)
    assert "vm_memory_high_watermark.relative" not in conf
    container = manifest.container("rabbitmq", "rabbitmq")
    assert container["resources"]["limits"]["memory"] == limit


def test_memory_watermark_follows_the_fraction(render: RenderFn) -> None:
    manifest = render({"rabbitmq": {"memoryHighWatermark": 0.4, "resources": {"limits": {"memory": "2Gi"}}}})
    assert rabbitmq_conf(manifest)["vm_memory_high_watermark.absolute"] == str(int(0.4 * 2 * 1024**3))


def test_broker_without_memory_limit_is_refused(render_error: RenderErrorFn) -> None:
    stderr = render_error({"rabbitmq": {"resources": {"limits": {"memory": None}}}})
    assert "rabbitmq.resources.limits.memory is required" in stderr
    assert "vm_memory_high_watermark.absolute" in stderr
