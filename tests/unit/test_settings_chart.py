"""The chart holds to the settings registry: every variable a taskqueue container gets is declared for its
component, and every declared values key renders its variable."""

from __future__ import annotations

from typing import Any

import pytest

from taskqueue.config import load_settings
from taskqueue.settings_registry import BY_ENV, COMPONENTS, SETTINGS, Setting
from tests.chart.rendering import (
    COMPONENT_LABEL,
    POD_OWNER_KINDS,
    Helm,
    ValuesSet,
    chart_values,
    env_of,
    find_helm,
    labels_of,
    newest_kube_version,
    parse_manifest,
    pod_spec_of,
)

#: Values that switch on each conditional variable: a rate instead of an interval, a count (then idle),
#: extra task modules, Flower's persistence, Flower without auth, an external broker given as a URL, then
#: as host and parts (beat is off by default: on wherever a shared variable is switched).
SWITCHES: dict[str, dict[str, Any]] = {
    "default": {},
    "beat-rate-count-persistence-modules": {
        "beat": {"enabled": True},
        "worker": {"taskModules": ["app.tasks"]},
        "producer": {"rate": 3, "count": 5},
        "flower": {"persistence": {"enabled": True}},
    },
    "flower-without-auth": {"flower": {"auth": {"enabled": False}}},
    "external-broker-url": {
        "beat": {"enabled": True},
        "rabbitmq": {"enabled": False},
        "externalBroker": {"host": "broker.example", "existingSecret": "broker", "urlKey": "url"},
    },
    "external-broker-parts": {
        "beat": {"enabled": True},
        "rabbitmq": {"enabled": False},
        "externalBroker": {"host": "broker.example", "username": "app", "existingSecret": "broker"},
    },
}


def render_containers(overrides: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each component's taskqueue containers, rendered with the chart defaults and ``overrides``."""
    executable = find_helm("helm4")
    if executable is None:
        pytest.skip("helm4 not found: run scripts/install-helm.sh .venv")
    values = ValuesSet.of("registry", overrides=overrides)
    text = Helm("helm4", executable).template(values, newest_kube_version())
    containers: dict[str, list[dict[str, Any]]] = {}
    for obj in parse_manifest(text):
        component = labels_of(obj).get(COMPONENT_LABEL)
        if obj["kind"] in POD_OWNER_KINDS and component in COMPONENTS:
            containers.setdefault(component, []).extend(pod_spec_of(obj)["containers"])
    return containers


def render_env(overrides: dict[str, Any]) -> dict[str, set[str]]:
    """The env names of each component's taskqueue containers."""
    return {
        component: {name for container in containers for name in env_of(container)}
        for component, containers in render_containers(overrides).items()
    }


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, set[str]]]:
    return {name: render_env(overrides) for name, overrides in SWITCHES.items()}


def test_every_variable_a_container_gets_is_declared_for_its_component(
    rendered: dict[str, dict[str, set[str]]],
) -> None:
    undeclared = sorted(
        f"{values}: {component} gets {name}"
        for values, env in rendered.items()
        for component, names in env.items()
        for name in names
        if name not in BY_ENV or component not in BY_ENV[name].components
    )
    assert undeclared == []


def test_every_declared_values_key_renders_its_variable(rendered: dict[str, dict[str, set[str]]]) -> None:
    missing = sorted(
        f"{setting.env} in {component} ({key})"
        for setting in SETTINGS
        for component, key in setting.values.items()
        if not any(setting.env in env.get(component, set()) for env in rendered.values())
    )
    assert missing == []


def test_every_fixed_variable_is_rendered(rendered: dict[str, dict[str, set[str]]]) -> None:
    missing = sorted(
        f"{setting.env} in {component}"
        for setting in SETTINGS
        for component in setting.chart_fixed
        if not any(setting.env in env.get(component, set()) for env in rendered.values())
    )
    assert missing == []


def _lookup(values: dict[str, Any], key: str) -> bool:
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.values], ids=lambda s: s.env)
def test_declared_values_keys_exist_in_values_yaml(setting: Setting) -> None:
    assert [key for key in setting.values.values() if not _lookup(chart_values(), key)] == []


def test_the_chart_leaves_only_the_heartbeat_files_to_the_package(
    rendered: dict[str, dict[str, set[str]]],
) -> None:
    # Paths the probes read with the same defaults: set in one place (the registry), not in the chart too.
    left = [s.env for s in SETTINGS if not s.values and not s.chart_fixed]
    assert left == ["WORKER_HEALTH_FILE", "PRODUCER_HEALTH_FILE", "BEAT_HEALTH_FILE"]
    assert [f"{values}: {name}" for values, env in rendered.items() for names in env.values()
            for name in names if name in left] == []


def test_the_chart_defaults_are_the_package_defaults(clean_env: pytest.MonkeyPatch) -> None:
    # Each container's plain env values, read as the package reads them, equal what the package assumes
    # unset: changing a default on one side alone fails here. The differences are the chart's own.
    expected_differences = {
        "RABBITMQ_SERVICE_SERVICE_HOST",  # the release's broker Service instead of localhost
        "FLOWER_ADDRESS",  # all interfaces in the pod instead of loopback
        "FLOWER_ALLOW_UNAUTHENTICATED",  # only rendered with auth off, as true
        "FLOWER_BROKER_API",  # the bundled broker's management API instead of none
    }
    defaults = load_settings()
    differences: set[str] = set()
    for containers in render_containers({"flower": {"auth": {"enabled": False}}}).values():
        for container in containers:
            plain = {name: entry["value"] for name, entry in env_of(container).items() if "value" in entry}
            with clean_env.context() as env:
                env.setenv("RABBITMQ_PASSWORD", "from-a-secret")  # a secretKeyRef: not compared
                for name, value in plain.items():
                    env.setenv(name, value)
                rendered = load_settings()
            differences |= {
                name for name in plain if name in BY_ENV
                and getattr(rendered, BY_ENV[name].field) != getattr(defaults, BY_ENV[name].field)
            }
    assert differences == expected_differences
