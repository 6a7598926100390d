"""celery beat (`taskqueue beat`): a singleton Deployment, its PDB and its optional state PVC."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskqueue.schedule import DEFAULT_SCHEDULE, ScheduleEntry, parse_schedule
from taskqueue.settings_registry import BY_ENV
from tests.chart.rendering import (
    Manifest,
    RenderErrorFn,
    RenderFn,
    chart_values,
    env_of,
    env_value,
    pod_spec_of,
    pod_template_labels,
)

VALUES = chart_values()
BEAT_VALUES = VALUES["beat"]
HEALTH_BEAT = ["taskqueue", "health", "beat"]
ON = {"beat": {"enabled": True}}
STATE_DIR = "/var/lib/taskqueue-beat"


def beat(**values: Any) -> dict[str, Any]:
    return {"beat": {"enabled": True, **values}}


@pytest.fixture(scope="module")
def manifest(render: RenderFn) -> Manifest:
    return render(ON)


def test_off_by_default(default_manifest: Manifest) -> None:
    assert BEAT_VALUES["enabled"] is False
    assert default_manifest.find(component="beat") == []
    assert "BEAT_SCHEDULE" not in default_manifest.text


def test_enabled_renders_one_replica_with_the_recreate_strategy(manifest: Manifest) -> None:
    deployment = manifest.workload("beat")
    assert deployment["kind"] == "Deployment"
    assert deployment["metadata"]["name"] == "tq-celery-rabbitmq-beat"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "a rollout must never run two beats"
    assert manifest.container("beat")["args"] == ["beat"]
    assert {obj["kind"] for obj in manifest.find(component="beat")} == {"Deployment", "PodDisruptionBudget"}


def test_replica_count_zero_pauses_the_schedule(render: RenderFn) -> None:
    assert render(beat(replicaCount=0)).workload("beat")["spec"]["replicas"] == 0


@pytest.mark.parametrize("replicas", [2, 3, -1])
def test_schema_refuses_more_than_one_replica(render_error: RenderErrorFn, replicas: int) -> None:
    stderr = render_error(beat(replicaCount=replicas))
    assert "at '/beat/replicaCount': value must be one of 0, 1" in stderr


def test_never_autoscaled(render: RenderFn) -> None:
    manifest = render({**beat(), "worker": {"autoscaling": {"enabled": True}}})
    targets = [hpa["spec"]["scaleTargetRef"]["name"] for hpa in manifest.find("HorizontalPodAutoscaler")]
    assert targets == ["tq-celery-rabbitmq-worker"]


def test_pdb_does_not_block_drains(manifest: Manifest) -> None:
    pdb = manifest.one("PodDisruptionBudget", component="beat")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert selector == manifest.workload("beat")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_template_labels(manifest.workload("beat")).items()


def test_pdb_can_be_disabled(render: RenderFn) -> None:
    assert not render(beat(pdb={"enabled": False})).find("PodDisruptionBudget", component="beat")


def test_default_schedule_is_the_runtimes_add_every_five_seconds(manifest: Manifest) -> None:
    raw = env_value(manifest.container("beat"), "BEAT_SCHEDULE")
    assert json.loads(raw) == [
        {"name": "add-every-5s", "task": "taskqueue.tasks.add", "every": 5, "args": [2, 3]}
    ]
    assert parse_schedule(raw) == DEFAULT_SCHEDULE, "the chart's default and the runtime's must agree"


def test_schedule_values_reach_the_runtime_as_it_reads_them(render: RenderFn) -> None:
    schedule = [
        {"name": "nightly", "task": "pkg.tasks.cleanup", "crontab": "0 4 * * *", "kwargs": {"days": 7},
         "queue": "maintenance", "expires": 3600},
        {"name": "fast", "task": "taskqueue.tasks.add", "every": 0.5, "args": [1, 2]},
    ]
    container = render(beat(schedule=schedule)).container("beat")
    assert parse_schedule(env_value(container, "BEAT_SCHEDULE")) == (
        ScheduleEntry("nightly", "pkg.tasks.cleanup", crontab="0 4 * * *", kwargs={"days": 7},
                      queue="maintenance", expires=3600.0),
        ScheduleEntry("fast", "taskqueue.tasks.add", every=0.5, args=(1, 2)),
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a", "task": "x.y"}, "at '/beat/schedule/0': 'oneOf' failed, none matched"),
        ({"name": "a", "task": "x.y", "every": 5, "crontab": "* * * * *"},
         "at '/beat/schedule/0': 'oneOf' failed, subschemas 0, 1 matched"),
        ({"name": "a", "task": "x.y", "every": 0},
         "at '/beat/schedule/0/every': exclusiveMinimum: got 0, want 0"),
        ({"name": "a", "task": "x.y", "crontab": "* * *"}, "at '/beat/schedule/0/crontab': '* * *' does not"),
        ({"name": "a", "task": "x.y", "every": 5, "evry": 5},
         "at '/beat/schedule/0': additional properties 'evry' not allowed"),
        ({"task": "x.y", "every": 5}, "at '/beat/schedule/0': missing property 'name'"),
    ],
)
def test_schema_refuses_a_bad_entry(render_error: RenderErrorFn, entry: dict[str, Any], message: str) -> None:
    assert message in render_error(beat(schedule=[entry]))


def test_schema_refuses_an_empty_schedule(render_error: RenderErrorFn) -> None:
    assert "at '/beat/schedule': minItems: got 0, want 1" in render_error(beat(schedule=[]))


def test_duplicate_names_and_a_stale_heartbeat_are_refused_together(render_error: RenderErrorFn) -> None:
    entry = {"name": "twice", "task": "x.y", "every": 5}
    stderr = render_error(beat(schedule=[entry, entry], health={"interval": 5, "maxAge": 5}))
    assert "2 value problem(s):" in stderr
    assert '- beat.schedule: the name "twice" is used by two entries' in stderr
    assert "- beat.health.maxAge must exceed beat.health.interval" in stderr


def test_probes_read_the_heartbeat(manifest: Manifest) -> None:
    container = manifest.container("beat")
    assert container["livenessProbe"]["exec"]["command"] == [*HEALTH_BEAT, "--liveness"]
    assert container["readinessProbe"]["exec"]["command"] == HEALTH_BEAT
    liveness = container["livenessProbe"]
    expected = {**VALUES["probeDefaults"], **BEAT_VALUES["livenessProbe"]}  # its own keys over the defaults
    assert (liveness["periodSeconds"], liveness["failureThreshold"]) == (
        expected["periodSeconds"], expected["failureThreshold"]
    )
    # The file is the package's default, which beat writes and the probe reads: on the writable /tmp.
    assert "BEAT_HEALTH_FILE" not in env_of(container)
    assert str(BY_ENV["BEAT_HEALTH_FILE"].default).startswith("/tmp/")
    interval, max_age = (float(env_value(container, n)) for n in ("HEALTH_INTERVAL", "HEALTH_MAX_AGE"))
    assert (interval, max_age) == (5, 30)


def test_probe_values_honoured(render: RenderFn) -> None:
    container = render(
        beat(health={"interval": 2, "maxAge": 20}, livenessProbe={"enabled": True, "periodSeconds": 7},
             readinessProbe={"enabled": False})
    ).container("beat")
    assert container["livenessProbe"]["periodSeconds"] == 7
    assert "readinessProbe" not in container
    assert (env_value(container, "HEALTH_INTERVAL"), env_value(container, "HEALTH_MAX_AGE")) == ("2", "20")


def test_restricted_security_context(manifest: Manifest) -> None:
    spec = pod_spec_of(manifest.workload("beat"))
    container = manifest.container("beat")
    assert spec["securityContext"] == VALUES["podSecurityContext"]
    assert container["securityContext"] == VALUES["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["automountServiceAccountToken"] is False
    assert container["resources"] == BEAT_VALUES["resources"]


def test_state_in_an_emptydir_by_default(manifest: Manifest) -> None:
    container = manifest.container("beat")
    volumes = {v["name"]: v for v in pod_spec_of(manifest.workload("beat"))["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"tmp": "/tmp", "beat-state": STATE_DIR}
    assert volumes["beat-state"] == {"name": "beat-state", "emptyDir": {"sizeLimit": "16Mi"}}
    assert env_value(container, "BEAT_SCHEDULE_FILE") == f"{STATE_DIR}/celerybeat-schedule"
    assert not manifest.find("PersistentVolumeClaim", component="beat")


def test_state_on_a_pvc_with_persistence(render: RenderFn) -> None:
    manifest = render(beat(persistence={"enabled": True, "size": "1Gi", "storageClass": "fast"}))
    pvc = manifest.one("PersistentVolumeClaim", component="beat")
    assert pvc["metadata"]["name"] == "tq-celery-rabbitmq-beat"
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "1Gi"}},
    }
    volumes = {v["name"]: v for v in pod_spec_of(manifest.workload("beat"))["volumes"]}
    assert volumes["beat-state"]["persistentVolumeClaim"] == {"claimName": "tq-celery-rabbitmq-beat"}


def test_existing_claim(render: RenderFn) -> None:
    manifest = render(beat(persistence={"enabled": True, "existingClaim": "my-beat-state"}))
    assert not manifest.find("PersistentVolumeClaim", component="beat")
    volumes = {v["name"]: v for v in pod_spec_of(manifest.workload("beat"))["volumes"]}
    assert volumes["beat-state"]["persistentVolumeClaim"] == {"claimName": "my-beat-state"}


def test_broker_wiring_is_the_producers(manifest: Manifest) -> None:
    beat_env, producer_env = env_of(manifest.container("beat")), env_of(manifest.container("producer"))
    shared = ("RABBITMQ_SERVICE_SERVICE_HOST", "RABBITMQ_SERVICE_SERVICE_PORT", "RABBITMQ_VHOST",
              "RABBITMQ_USERNAME", "RABBITMQ_PASSWORD", "QUEUE_NAME", "QUEUE_TYPE", "QUEUE_DELIVERY_LIMIT",
              "RESULT_BACKEND", "LOG_LEVEL")
    assert {name: beat_env[name] for name in shared} == {name: producer_env[name] for name in shared}
    assert "secretKeyRef" in beat_env["RABBITMQ_PASSWORD"]["valueFrom"]
    annotations = manifest.workload("beat")["spec"]["template"]["metadata"]["annotations"]
    producer = manifest.workload("producer")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/broker-secret"] == producer["checksum/broker-secret"]


def test_external_broker_url_reaches_beat(render: RenderFn) -> None:
    manifest = render({**beat(), "rabbitmq": {"enabled": False},
                       "externalBroker": {"existingSecret": "broker", "urlKey": "url"}})
    assert env_of(manifest.container("beat"))["BROKER_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "broker", "key": "url"}
    }


def test_network_policy_admits_beat_to_the_broker(render: RenderFn) -> None:
    manifest = render({**beat(), "networkPolicy": {"enabled": True}})
    policy = manifest.one("NetworkPolicy", component="rabbitmq")
    labels = pod_template_labels(manifest.workload("beat"))
    amqp_peers = [
        peer["podSelector"]["matchLabels"]
        for rule in policy["spec"]["ingress"]
        if {"port": "amqp", "protocol": "TCP"} in rule["ports"]
        for peer in rule["from"]
        if "podSelector" in peer and "namespaceSelector" not in peer
    ]
    assert any(selector.items() <= labels.items() for selector in amqp_peers), amqp_peers


def test_scheduling_values_honoured(render: RenderFn) -> None:
    spec = pod_spec_of(render(beat(nodeSelector={"pool": "system"}, priorityClassName="high",
                                   podLabels={"team": "ops"}, terminationGracePeriodSeconds=45)
                              ).workload("beat"))
    assert (spec["nodeSelector"], spec["priorityClassName"], spec["terminationGracePeriodSeconds"]) == (
        {"pool": "system"}, "high", 45
    )
