"""The PrometheusRule (metrics.prometheusRule): `promtool check rules` accepts it and `promtool test rules`
runs the unit tests of tests/chart/alerts/ against it (each alert fires in one test and stays quiet in
another); the values' thresholds and durations land in the expressions; scoping, labels and namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.rendering import NAMESPACE, RELEASE, Manifest, RenderErrorFn, RenderFn, chart_values
from tests.support.promtool import MISSING, find_promtool, run_promtool

ALERT_TESTS = Path(__file__).parent / "alerts"
FULLNAME = f"{RELEASE}-celery-rabbitmq"
RABBITMQ = f'namespace="{NAMESPACE}", job="{FULLNAME}-rabbitmq"'
FLOWER = f'namespace="{NAMESPACE}", job="{FULLNAME}-flower"'
#: The values the unit tests of tests/chart/alerts/ are written for: defaults on a 3-node broker.
UNIT_TEST_VALUES: dict[str, Any] = {
    "metrics": {"prometheusRule": {"enabled": True}}, "rabbitmq": {"replicaCount": 3},
}
ALL_ALERTS = {
    "CeleryQueueGrowing", "CeleryQueueWithoutConsumers", "CeleryNoWorkerUp", "CeleryTaskFailureRatio",
    "CeleryDeadLetterQueueNotEmpty", "RabbitMQMemoryAlarm", "RabbitMQDiskAlarm",
    "RabbitMQQuorumQueueWithoutQuorum", "RabbitMQNodeDown",
}


@pytest.fixture(scope="module")
def promtool() -> Path:
    found = find_promtool()
    if found is None:
        pytest.skip(MISSING)
    return found


def rule_of(manifest: Manifest) -> dict[str, Any]:
    return manifest.one("PrometheusRule")


def rules_by_alert(manifest: Manifest) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in rule_of(manifest)["spec"]["groups"] for rule in group["rules"]}


def write_rules(manifest: Manifest, directory: Path) -> Path:
    """The PrometheusRule's spec is a Prometheus rules file as it stands (groups)."""
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rule_of(manifest)["spec"], sort_keys=False))
    return path


def test_off_by_default(default_manifest: Manifest) -> None:
    assert not default_manifest.has("PrometheusRule")


def test_promtool_check_rules_passes(render: RenderFn, promtool: Path, tmp_path: Path) -> None:
    rules = write_rules(render(UNIT_TEST_VALUES), tmp_path)
    done = run_promtool(promtool, "check", "rules", str(rules))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALL_ALERTS)} rules found" in done.stdout


@pytest.mark.parametrize("suite", sorted(p.name for p in ALERT_TESTS.glob("*.test.yaml")))
def test_promtool_unit_tests_pass(render: RenderFn, promtool: Path, tmp_path: Path, suite: str) -> None:
    rules = write_rules(render(UNIT_TEST_VALUES), tmp_path)
    test_file = tmp_path / suite
    test_file.write_text((ALERT_TESTS / suite).read_text().replace("RENDERED_RULES", str(rules)))
    done = run_promtool(promtool, "test", "rules", str(test_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test(render: RenderFn) -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in ALERT_TESTS.glob("*.test.yaml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(rules_by_alert(render(UNIT_TEST_VALUES))) == ALL_ALERTS
    assert fired == ALL_ALERTS, f"alerts no unit test fires: {sorted(ALL_ALERTS - fired)}"
    assert quiet == ALL_ALERTS, f"alerts no unit test keeps quiet: {sorted(ALL_ALERTS - quiet)}"


def test_thresholds_and_durations_come_from_values(render: RenderFn) -> None:
    manifest = render({
        "metrics": {"prometheusRule": {
            "enabled": True,
            "rabbitmqNodes": 5,
            "quorumQueueMembers": 3,
            "additionalLabels": {"team": "queues"},
            "queueGrowing": {"for": "30m", "window": "15m", "minMessages": 1000, "severity": "page"},
            "queueWithoutConsumers": {"for": "7m", "minMessages": 3, "severity": "info"},
            "noWorkerUp": {"for": "90s", "severity": "page"},
            "taskFailureRatio": {"for": "11m", "window": "1h", "ratio": 0.25, "severity": "ticket"},
            "deadLetterQueueNotEmpty": {"for": "0s", "minMessages": 10, "severity": "ticket"},
            "memoryAlarm": {"for": "3m", "severity": "page"},
            "diskAlarm": {"for": "4m", "severity": "page"},
            "quorumQueueWithoutQuorum": {"for": "5m", "severity": "page"},
            "nodeDown": {"for": "6m", "severity": "page"},
        }},
        "celery": {"queueName": "arith"},
    })
    rules = rules_by_alert(manifest)
    work = f'{RABBITMQ}, vhost="/", queue="arith"'
    by_queue = "max by (namespace, vhost, queue)"
    ready = f"rabbitmq_detailed_queue_messages_ready{{{work}}}"
    same_queue = "and on (namespace, vhost, queue)"
    assert rules["CeleryQueueGrowing"]["expr"] == "\n".join(
        [f"{by_queue} (delta({ready}[15m])) > 0", same_queue, f"{by_queue} ({ready}) > 1000"])
    assert rules["CeleryQueueWithoutConsumers"]["expr"] == "\n".join(
        [f"{by_queue} (rabbitmq_detailed_queue_consumers{{{work}}}) == 0", same_queue,
         f"{by_queue} ({ready}) > 3"])
    assert rules["CeleryNoWorkerUp"]["expr"] == (
        f"sum by (namespace, job) (up{{{FLOWER}}}) > 0\n"
        "unless on (namespace, job)\n"
        f"sum by (namespace, job) (flower_worker_online{{{FLOWER}}}) > 0"
    )
    assert rules["CeleryTaskFailureRatio"]["expr"] == (
        f'sum by (namespace, job, task) (rate(flower_events_total{{{FLOWER}, type="task-failed"}}[1h]))\n'
        "/\n"
        "sum by (namespace, job, task) "
        f'(rate(flower_events_total{{{FLOWER}, type=~"task-succeeded|task-failed"}}[1h]))\n'
        "> 0.25"
    )
    assert rules["CeleryDeadLetterQueueNotEmpty"]["expr"] == (
        f'max by (namespace, vhost, queue) (rabbitmq_detailed_queue_messages{{{RABBITMQ}, vhost="/", '
        'queue="arith.dead-letter"}) > 10'
    )
    assert rules["RabbitMQMemoryAlarm"]["expr"] == (
        f"max by (namespace, job, pod, instance) (rabbitmq_alarms_memory_used_watermark{{{RABBITMQ}}}) > 0"
    )
    assert rules["RabbitMQDiskAlarm"]["expr"] == (
        "max by (namespace, job, pod, instance) "
        f"(rabbitmq_alarms_free_disk_space_watermark{{{RABBITMQ}}}) > 0"
    )
    # 3 members: a majority is 2.
    assert rules["RabbitMQQuorumQueueWithoutQuorum"]["expr"] == (
        'count by (namespace, vhost, queue) ({__name__=~"rabbitmq_detailed_raft_term_total|'
        f'rabbitmq_detailed_raft_term", {RABBITMQ}, vhost="/", queue=~"arith|arith\\\\.dead-letter"}}) < 2'
    )
    assert rules["RabbitMQNodeDown"]["expr"] == (
        f"sum by (namespace, job) (max by (namespace, job, instance) (up{{{RABBITMQ}}})) < 5\n"
        "or\n"
        f"absent(up{{{RABBITMQ}}}) - 1"
    )
    expected = {
        "CeleryQueueGrowing": ("30m", "page"), "CeleryQueueWithoutConsumers": ("7m", "info"),
        "CeleryNoWorkerUp": ("90s", "page"), "CeleryTaskFailureRatio": ("11m", "ticket"),
        "CeleryDeadLetterQueueNotEmpty": ("0s", "ticket"), "RabbitMQMemoryAlarm": ("3m", "page"),
        "RabbitMQDiskAlarm": ("4m", "page"), "RabbitMQQuorumQueueWithoutQuorum": ("5m", "page"),
        "RabbitMQNodeDown": ("6m", "page"),
    }
    assert {name: (rule["for"], rule["labels"]["severity"]) for name, rule in rules.items()} == expected
    assert all(rule["labels"] == {"severity": expected[name][1], "team": "queues"}
               for name, rule in rules.items())
    assert "the 3 members" in rules["RabbitMQQuorumQueueWithoutQuorum"]["annotations"]["description"]
    assert "of the 5 RabbitMQ nodes" in rules["RabbitMQNodeDown"]["annotations"]["description"]


def test_default_thresholds_are_the_documented_ones(render: RenderFn) -> None:
    """The unit tests are written for these defaults; a change of default must come with new tests."""
    values = chart_values()["metrics"]["prometheusRule"]
    assert {key: values[key] for key in ("queueGrowing", "taskFailureRatio", "nodeDown")} == {
        "queueGrowing": {"for": "10m", "window": "10m", "minMessages": 100, "severity": "warning"},
        "taskFailureRatio": {"for": "5m", "window": "10m", "ratio": 0.1, "severity": "warning"},
        "nodeDown": {"for": "2m", "severity": "critical"},
    }
    rules = rules_by_alert(render(UNIT_TEST_VALUES))
    assert {name: rule["for"] for name, rule in rules.items()} == {
        "CeleryQueueGrowing": "10m", "CeleryQueueWithoutConsumers": "5m", "CeleryNoWorkerUp": "5m",
        "CeleryTaskFailureRatio": "5m", "CeleryDeadLetterQueueNotEmpty": "1m", "RabbitMQMemoryAlarm": "1m",
        "RabbitMQDiskAlarm": "1m", "RabbitMQQuorumQueueWithoutQuorum": "1m", "RabbitMQNodeDown": "2m",
    }


def test_metadata_namespace_and_rule_selector_labels(render: RenderFn) -> None:
    rule = rule_of(render({"metrics": {"prometheusRule": {
        "enabled": True, "namespace": "monitoring", "labels": {"release": "kube-prometheus-stack"},
    }}}))
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == FULLNAME
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    groups = [group["name"] for group in rule["spec"]["groups"]]
    assert groups == [f"{FULLNAME}.celery", f"{FULLNAME}.rabbitmq"]
    # The release's own namespace by default.
    assert rule_of(render(UNIT_TEST_VALUES))["metadata"]["namespace"] == NAMESPACE


def test_selectors_can_be_replaced(render: RenderFn) -> None:
    rules = rules_by_alert(render({"metrics": {"prometheusRule": {
        "enabled": True, "rabbitmqSelector": 'job="rabbitmq"', "flowerSelector": 'service="flower"',
    }}}))
    assert rules["RabbitMQMemoryAlarm"]["expr"] == (
        'max by (namespace, job, pod, instance) (rabbitmq_alarms_memory_used_watermark{job="rabbitmq"}) > 0'
    )
    assert 'flower_worker_online{service="flower"}' in rules["CeleryNoWorkerUp"]["expr"]


def test_default_node_count_is_the_replica_count(render: RenderFn) -> None:
    rules = rules_by_alert(render({
        "metrics": {"prometheusRule": {"enabled": True}}, "rabbitmq": {"replicaCount": 5},
    }))
    assert f"up{{{RABBITMQ}}})) < 5\n" in rules["RabbitMQNodeDown"]["expr"]
    assert rules["RabbitMQQuorumQueueWithoutQuorum"]["expr"].endswith(" < 3")


def test_flower_and_quorum_alerts_follow_the_components(render: RenderFn) -> None:
    rules = rules_by_alert(render({
        "metrics": {"prometheusRule": {"enabled": True}},
        "flower": {"enabled": False},
        "celery": {"queueType": "classic"},
    }))
    dropped = {"CeleryNoWorkerUp", "CeleryTaskFailureRatio", "RabbitMQQuorumQueueWithoutQuorum"}
    assert set(rules) == ALL_ALERTS - dropped


def test_external_broker_needs_a_selector_and_a_node_count(render_error: RenderErrorFn) -> None:
    stderr = render_error({
        "metrics": {"prometheusRule": {"enabled": True}},
        "rabbitmq": {"enabled": False},
        "externalBroker": {"host": "rabbit.example", "username": "tq", "existingSecret": "broker"},
    })
    assert "metrics.prometheusRule.rabbitmqSelector must select the external broker's series" in stderr
    assert "metrics.prometheusRule.rabbitmqNodes must be the external broker's node count" in stderr


def test_external_broker_rules(render: RenderFn) -> None:
    rules = rules_by_alert(render({
        "metrics": {"prometheusRule": {"enabled": True, "rabbitmqSelector": 'job="shared-rabbitmq"',
                                       "rabbitmqNodes": 3}},
        "rabbitmq": {"enabled": False},
        "externalBroker": {"host": "rabbit.example", "username": "tq", "existingSecret": "broker",
                           "vhost": "jobs"},
    }))
    assert rules["CeleryDeadLetterQueueNotEmpty"]["expr"] == (
        'max by (namespace, vhost, queue) (rabbitmq_detailed_queue_messages{job="shared-rabbitmq", '
        'vhost="jobs", queue="celery.dead-letter"}) > 0'
    )
    assert rules["RabbitMQNodeDown"]["expr"].startswith(
        'sum by (namespace, job) (max by (namespace, job, instance) (up{job="shared-rabbitmq"})) < 3\n'
    )


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"queueGrowing": {"for": "ten minutes"}}, "at '/metrics/prometheusRule/queueGrowing/for': "
         "'ten minutes' does not match pattern"),
        ({"taskFailureRatio": {"ratio": 1.5}}, "at '/metrics/prometheusRule/taskFailureRatio/ratio': "
         "maximum: got 1.5, want 1"),
        ({"deadLetterQueueNotEmpty": {"minMessages": -1}},
         "at '/metrics/prometheusRule/deadLetterQueueNotEmpty/minMessages': minimum: got -1, want 0"),
        ({"nodeDown": {"threshold": 1}},
         "at '/metrics/prometheusRule/nodeDown': additional properties 'threshold' not allowed"),
        ({"rabbitmqNodes": "3"}, "at '/metrics/prometheusRule/rabbitmqNodes': got string, want integer"),
    ],
    ids=["for-not-a-duration", "ratio-above-1", "negative-min-messages", "unknown-key", "nodes-a-string"],
)
def test_schema_refuses_bad_alert_values(
    render_error: RenderErrorFn, bad: dict[str, Any], error: str
) -> None:
    stderr = render_error({"metrics": {"prometheusRule": {"enabled": True, **bad}}})
    assert f"\n- {error}" in stderr, stderr
