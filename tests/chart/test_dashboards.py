"""Grafana dashboards (metrics.dashboards): files/dashboards/*.json are valid dashboards, shipped one per
ConfigMap with the label the Grafana sidecar watches; the metric names their PromQL reads (and the alerts')
are pinned here, and tests/integration/test_metric_names.py finds each of them on the real exporters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.rendering import CHART_DIR, NAMESPACE, RELEASE, Manifest, RenderErrorFn, RenderFn
from tests.support.promql import dashboard_exprs, load_dashboards, metric_name_choices, metric_names
from tests.support.promtool import MISSING, find_promtool, run_promtool

DASHBOARDS_DIR = CHART_DIR / "files" / "dashboards"
DASHBOARDS = load_dashboards(DASHBOARDS_DIR)
FULLNAME = f"{RELEASE}-celery-rabbitmq"
ENABLED = {"metrics": {"dashboards": {"enabled": True}}}

#: What each dashboard reads: only metrics the exporters of issue 11 part 1 emit (RabbitMQ's /metrics and
#: /metrics/detailed, Flower's /metrics), plus `up`, which Prometheus records for every scrape target.
EXPECTED_NAMES = {
    "celery.json": {
        "flower_events_total", "flower_worker_online", "flower_worker_number_of_currently_executing_tasks",
        "flower_task_runtime_seconds_bucket", "flower_task_runtime_seconds_sum",
        "flower_task_runtime_seconds_count",
    },
    "rabbitmq.json": {
        "up", "rabbitmq_identity_info", "rabbitmq_alarms_memory_used_watermark",
        "rabbitmq_alarms_free_disk_space_watermark", "rabbitmq_detailed_queue_messages",
        "rabbitmq_detailed_queue_messages_ready", "rabbitmq_detailed_queue_messages_unacked",
        "rabbitmq_detailed_queue_consumers", "rabbitmq_detailed_raft_term_total",
        "rabbitmq_detailed_raft_term",
    },
}


def configmaps(manifest: Manifest) -> dict[str, dict[str, Any]]:
    return {cm["metadata"]["name"]: cm for cm in manifest.find("ConfigMap")
            if cm["metadata"]["name"].startswith(f"{FULLNAME}-dashboard-")}


def test_off_by_default(default_manifest: Manifest) -> None:
    assert configmaps(default_manifest) == {}


def test_one_configmap_per_dashboard_with_the_sidecar_label(render: RenderFn) -> None:
    found = configmaps(render(ENABLED))
    assert set(found) == {f"{FULLNAME}-dashboard-celery", f"{FULLNAME}-dashboard-rabbitmq"}
    for name, cm in found.items():
        file_name = name.removeprefix(f"{FULLNAME}-dashboard-") + ".json"
        assert cm["metadata"]["namespace"] == NAMESPACE
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert list(cm["data"]) == [file_name]
        # The file as it stands: the ConfigMap carries it byte for byte (minus the final newline).
        assert cm["data"][file_name] == (DASHBOARDS_DIR / file_name).read_text().rstrip("\n")
        assert json.loads(cm["data"][file_name]) == DASHBOARDS[file_name]


def test_label_value_namespace_and_annotations_are_values(render: RenderFn) -> None:
    found = configmaps(render({"metrics": {"dashboards": {
        "enabled": True, "label": "grafana.io/dashboard", "labelValue": "celery", "namespace": "grafana",
        "annotations": {"grafana_folder": "Celery"},
    }}}))
    assert len(found) == 2
    for cm in found.values():
        assert cm["metadata"]["labels"]["grafana.io/dashboard"] == "celery"
        assert "grafana_dashboard" not in cm["metadata"]["labels"]
        assert cm["metadata"]["namespace"] == "grafana"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "Celery"


def test_schema_refuses_an_empty_label(render_error: RenderErrorFn) -> None:
    assert "label" in render_error({"metrics": {"dashboards": {"enabled": True, "label": ""}}})


@pytest.mark.parametrize("file_name", sorted(DASHBOARDS))
def test_dashboard_is_a_grafana_dashboard(file_name: str) -> None:
    dashboard = DASHBOARDS[file_name]
    assert dashboard["uid"] == f"celery-rabbitmq-{file_name.removesuffix('.json')}"
    assert dashboard["title"] and dashboard["panels"]
    assert "id" not in dashboard, "a provisioned dashboard carries no database id"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        # Every query is scoped to the chosen release (namespace and job variables).
        for target in panel["targets"]:
            assert 'namespace="$namespace", job="$job"' in target["expr"], target["expr"]


@pytest.mark.parametrize("file_name", sorted(DASHBOARDS))
def test_dashboard_reads_only_the_agreed_metrics(file_name: str) -> None:
    names = set().union(*(metric_names(expr) for expr in dashboard_exprs(DASHBOARDS[file_name])))
    assert names == EXPECTED_NAMES[file_name]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le, task) (rate(flower_task_runtime_seconds_bucket{job="x", task=~"a|b"}[$__rate_interval])'
         ") / on (task) group_right count(y)", {"flower_task_runtime_seconds_bucket", "y"}),
        ("histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m] offset 1h)))", {"x_bucket"}),
        ('a{q=~".+\\\\.dead-letter"} / on (ns) group_left (node) b unless c and bool d or absent(e)',
         {"a", "b", "c", "d", "e"}),
        ("max_over_time(count by (q) (f)[1h:1m]) > 1e3 * 2", {"f"}),
        ('up{job="sum(z)"} == 1', {"up"}),
        ("sum without (instance) (g) atan2 h", {"g", "h"}),
    ],
)
def test_metric_names_are_parsed_out_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_name_matchers_are_choices() -> None:
    expr = ('count by (q) ({__name__=~"raft_term_total|raft_term", job="x"}) < on (q) '
            'sum by (q) ({__name__="y", a="{b}"}) + z{c="d"}')
    assert metric_name_choices(expr) == {
        frozenset({"raft_term_total", "raft_term"}), frozenset({"y"}), frozenset({"z"}),
    }
    assert metric_names(expr) == {"raft_term_total", "raft_term", "y", "z"}
    with pytest.raises(ValueError, match="not an alternation of plain names"):
        metric_name_choices('{__name__=~"rabbitmq_.*"}')


def test_label_values_variables_count_as_queries() -> None:
    dashboard = {"templating": {"list": [
        {"type": "query", "query": {"query": 'label_values(rabbitmq_identity_info{namespace="$ns"}, job)'}},
        {"type": "query", "query": "label_values(flower_events_total, namespace)"},
        {"type": "datasource", "query": "prometheus"},
    ]}}
    assert list(dashboard_exprs(dashboard)) == [
        'rabbitmq_identity_info{namespace="$ns"}', "flower_events_total",
    ]


def test_every_query_parses(tmp_path: Path) -> None:
    """promtool parses every dashboard query (Grafana's $__rate_interval given a value; the other variables
    sit inside label matcher strings), as recording rules of a throw-away rules file."""
    promtool = find_promtool()
    if promtool is None:
        pytest.skip(MISSING)
    rules = [
        {"record": f"dashboard:{file_name.removesuffix('.json')}:{index}",
         "expr": expr.replace("$__rate_interval", "5m")}
        for file_name, dashboard in DASHBOARDS.items()
        for index, expr in enumerate(dashboard_exprs(dashboard))
    ]
    path = tmp_path / "dashboards.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = run_promtool(promtool, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout
