"""The PrometheusRule and the dashboard ConfigMaps on a live cluster that has the Prometheus Operator's CRDs:
ci/alerts-values.yaml installs, the API server keeps every field of the rule (nothing pruned by the CRD's
schema) with the values' thresholds, and the ConfigMaps are found the way the Grafana sidecar finds them (by
its label), each carrying its dashboard."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.support.helm_release import CHART_DIR, ReleaseFactory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ALERTS_VALUES: dict[str, Any] = yaml.safe_load((CHART_DIR / "ci" / "alerts-values.yaml").read_text())
ALERTS = {
    "CeleryQueueGrowing", "CeleryQueueWithoutConsumers", "CeleryNoWorkerUp", "CeleryTaskFailureRatio",
    "CeleryDeadLetterQueueNotEmpty", "RabbitMQMemoryAlarm", "RabbitMQDiskAlarm",
    "RabbitMQQuorumQueueWithoutQuorum", "RabbitMQNodeDown",
}


def test_rule_and_dashboards_install(release_factory: ReleaseFactory, image_values: dict[str, Any]) -> None:
    release = release_factory()
    release.install({**ALERTS_VALUES, **image_values})

    (rule,) = release.objects("prometheusrules.monitoring.coreos.com")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(rules) == ALERTS
    for name, stored in rules.items():
        assert set(stored) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert stored["labels"]["team"] == "queues"
        assert set(stored["annotations"]) == {"summary", "description"}
        # Scoped to this release's broker and Flower Services in its namespace.
        assert f'namespace="{release.namespace}", job="{release.name}-celery-rabbitmq-' in stored["expr"]
    assert rules["CeleryQueueGrowing"]["for"] == "15m"
    assert rules["CeleryQueueGrowing"]["expr"].endswith(") > 500")
    assert rules["CeleryTaskFailureRatio"]["expr"].endswith("\n> 0.05")

    # What the sidecar does: list the ConfigMaps carrying its label.
    found = release.cluster.json("get", "configmaps", "-n", release.namespace, "-l", "grafana_dashboard=1")
    dashboards = {cm["metadata"]["name"]: cm for cm in found["items"]}
    prefix = f"{release.name}-celery-rabbitmq-dashboard-"
    assert set(dashboards) == {prefix + "celery", prefix + "rabbitmq"}
    for name, cm in dashboards.items():
        assert cm["metadata"]["annotations"]["grafana_folder"] == "Celery"
        (content,) = cm["data"].values()
        assert json.loads(content)["uid"] == "celery-rabbitmq-" + name.removeprefix(prefix)
