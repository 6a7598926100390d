"""Values keys renamed in this release: the former names still work for one release, win when set, and
the install notes name each one with its new name; the renamed and the newly exposed keys reach the
containers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import Manifest, RenderCache, RenderFn, ValuesSet, env_of, env_value

TASKQUEUE_COMPONENTS = ("worker", "producer", "flower")
FORMER = {"celery": {"deliveryLimit": 3}, "flower": {"containerPort": 8080}}


def notes(render_cache: RenderCache, overrides: dict[str, Any]) -> str:
    return render_cache.helm("helm4").notes(ValuesSet.of("renames", overrides=overrides))


def test_former_names_win_when_set(render: RenderFn) -> None:
    manifest = render(FORMER)
    for component in TASKQUEUE_COMPONENTS:
        assert env_value(manifest.container(component), "QUEUE_DELIVERY_LIMIT") == "3", component
    flower = manifest.container("flower")
    assert env_value(flower, "FLOWER_PORT") == "8080"
    assert [p["containerPort"] for p in flower["ports"]] == [8080]


def test_new_names_are_read_when_the_former_are_unset(render: RenderFn) -> None:
    manifest = render({"celery": {"queueDeliveryLimit": 4}, "flower": {"port": 8081}})
    assert env_value(manifest.container("worker"), "QUEUE_DELIVERY_LIMIT") == "4"
    assert env_value(manifest.container("flower"), "FLOWER_PORT") == "8081"


def test_install_notes_name_each_former_key_with_its_new_name(render_cache: RenderCache) -> None:
    text = notes(render_cache, FORMER)
    deprecated = text.split(
        "DEPRECATED values keys, read for this release only; rename them in your values:\n"
    )
    assert len(deprecated) == 2
    assert deprecated[1].splitlines()[:2] == [
        "  celery.deliveryLimit is now celery.queueDeliveryLimit",
        "  flower.containerPort is now flower.port",
    ]


def test_install_notes_mention_no_deprecation_by_default(render_cache: RenderCache) -> None:
    assert "DEPRECATED" not in notes(render_cache, {})


@pytest.mark.parametrize(
    ("overrides", "component", "variable", "expected"),
    [
        ({"celery": {"brokerConnectionTimeout": 2.5}}, "producer", "BROKER_CONNECTION_TIMEOUT", "2.5"),
        ({"worker": {"mingle": True}}, "worker", "WORKER_MINGLE", "true"),
        ({"worker": {"gossip": True}}, "worker", "WORKER_GOSSIP", "true"),
        ({"worker": {"taskModules": ["app.tasks", "app.reports"]}}, "worker", "WORKER_TASK_MODULES",
         "app.tasks,app.reports"),
        ({"flower": {"purgeOfflineWorkers": 600}}, "flower", "FLOWER_PURGE_OFFLINE_WORKERS", "600"),
        ({"flower": {"persistence": {"enabled": True, "stateSaveInterval": 5000}}}, "flower",
         "FLOWER_STATE_SAVE_INTERVAL", "5000"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.isupper() else "",
)
def test_newly_exposed_keys_reach_their_variable(
    render: RenderFn, overrides: dict[str, Any], component: str, variable: str, expected: str
) -> None:
    assert env_value(render(overrides).container(component), variable) == expected


def test_no_task_modules_sets_no_variable(default_manifest: Manifest) -> None:
    assert "WORKER_TASK_MODULES" not in env_of(default_manifest.container("worker"))
