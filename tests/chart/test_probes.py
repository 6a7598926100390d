"""Probe timing comes from one place: the top-level probeDefaults, with each component's startupProbe,
livenessProbe and readinessProbe setting only the keys that differ. A key a component sets wins over the
default even when it is false or 0; every probe that leaves a key out follows probeDefaults; the schema
types the overrides as strictly as the defaults."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import HELM_VERSIONS, Manifest, RenderErrorFn, RenderFn, chart_values, deep_merge

VALUES = chart_values()
DEFAULTS: dict[str, Any] = VALUES["probeDefaults"]
TIMING = ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold")
#: Every probe the chart renders, as (component values key = container name, probe).
PROBES = [
    ("rabbitmq", "startupProbe"),
    ("rabbitmq", "livenessProbe"),
    ("rabbitmq", "readinessProbe"),
    ("worker", "startupProbe"),
    ("worker", "livenessProbe"),
    ("worker", "readinessProbe"),
    ("producer", "livenessProbe"),
    ("producer", "readinessProbe"),
    ("flower", "startupProbe"),
    ("flower", "livenessProbe"),
    ("flower", "readinessProbe"),
    ("beat", "livenessProbe"),
    ("beat", "readinessProbe"),
]
#: Beat is off by default; with it on, every probe above is rendered.
ALL_ON = {"beat": {"enabled": True}}


def probe_id(probe: tuple[str, str]) -> str:
    return ".".join(probe)


def with_all_on(overrides: dict[str, Any]) -> dict[str, Any]:
    return deep_merge(ALL_ON, overrides)


def on_every_probe(value: dict[str, Any]) -> dict[str, Any]:
    """The same override on every probe of every component."""
    overrides: dict[str, Any] = {}
    for component, probe in PROBES:
        overrides = deep_merge(overrides, {component: {probe: value}})
    return overrides


def own_keys(component: str, probe: str) -> dict[str, Any]:
    """What values.yaml sets on the probe itself (the keys that differ from probeDefaults)."""
    own: dict[str, Any] = VALUES[component][probe] or {}
    return own


def timing(manifest: Manifest, component: str, probe: str) -> dict[str, Any]:
    rendered = manifest.container(component)[probe]
    return {key: rendered[key] for key in TIMING}


@pytest.fixture(scope="module")
def manifest(render: RenderFn) -> Manifest:
    return render(ALL_ON)


def test_probe_defaults_are_complete_and_every_probe_holds_only_what_differs() -> None:
    assert set(DEFAULTS) == {"enabled", *TIMING}
    for component, probe in PROBES:
        own = own_keys(component, probe)
        assert set(own) <= set(DEFAULTS), f"{component}.{probe}: {own}"
        repeated = {key: value for key, value in own.items() if DEFAULTS[key] == value}
        assert not repeated, f"{component}.{probe} repeats probeDefaults: {repeated}"


@pytest.mark.parametrize("probe", PROBES, ids=probe_id)
def test_each_probe_renders_its_own_keys_over_probe_defaults(
    manifest: Manifest, probe: tuple[str, str]
) -> None:
    component, name = probe
    expected = {key: {**DEFAULTS, **own_keys(component, name)}[key] for key in TIMING}
    assert timing(manifest, component, name) == expected
    assert manifest.container(component)[name]["successThreshold"] == 1


def test_a_one_field_override_keeps_the_other_fields(render: RenderFn, manifest: Manifest) -> None:
    changed = render(with_all_on({"worker": {"livenessProbe": {"failureThreshold": 9}}}))
    liveness = timing(changed, "worker", "livenessProbe")
    assert liveness == {**timing(manifest, "worker", "livenessProbe"), "failureThreshold": 9}
    # The component's own periodSeconds stays; timeoutSeconds still comes from probeDefaults.
    assert liveness["periodSeconds"] == own_keys("worker", "livenessProbe")["periodSeconds"]
    assert liveness["timeoutSeconds"] == DEFAULTS["timeoutSeconds"]
    for component, probe in PROBES:
        if (component, probe) != ("worker", "livenessProbe"):
            assert timing(changed, component, probe) == timing(manifest, component, probe), (component, probe)


def test_the_same_one_field_override_on_every_probe(render: RenderFn, manifest: Manifest) -> None:
    changed = render(with_all_on(on_every_probe({"timeoutSeconds": 42})))
    for component, probe in PROBES:
        expected = {**timing(manifest, component, probe), "timeoutSeconds": 42}
        assert timing(changed, component, probe) == expected, (component, probe)


def test_changing_probe_defaults_changes_every_probe_that_does_not_override_it(
    render: RenderFn, manifest: Manifest
) -> None:
    new_defaults = {"initialDelaySeconds": 3, "periodSeconds": 11, "timeoutSeconds": 7, "failureThreshold": 4}
    assert all(DEFAULTS[key] != value for key, value in new_defaults.items())
    changed = render(with_all_on({"probeDefaults": new_defaults}))
    followed = dict.fromkeys(TIMING, 0)
    for component, probe in PROBES:
        own = own_keys(component, probe)
        rendered = timing(changed, component, probe)
        for key in TIMING:
            if key in own:
                assert rendered[key] == own[key], f"{component}.{probe}.{key} is its own, not the default's"
            else:
                assert rendered[key] == new_defaults[key], f"{component}.{probe}.{key} ignores probeDefaults"
                followed[key] += 1
    assert all(followed.values()), f"some key is overridden by every probe: {followed}"


@pytest.mark.parametrize("helm", HELM_VERSIONS)
def test_false_and_zero_in_a_component_win_over_probe_defaults(render: RenderFn, helm: str) -> None:
    # A merge that skips "empty" values (false, 0) would keep the defaults here.
    overrides = {
        "probeDefaults": {"initialDelaySeconds": 20},
        "worker": {"livenessProbe": {"initialDelaySeconds": 0}, "readinessProbe": {"enabled": False}},
    }
    changed = render(with_all_on(overrides), helm=helm)
    worker = changed.container("worker")
    assert worker["livenessProbe"]["initialDelaySeconds"] == 0
    assert "readinessProbe" not in worker
    # Around them, the defaults still apply: a probe's own key first, then probeDefaults.
    own_delay = own_keys("worker", "startupProbe")["initialDelaySeconds"]
    assert worker["startupProbe"]["initialDelaySeconds"] == own_delay
    assert changed.container("flower")["readinessProbe"]["initialDelaySeconds"] == 20


@pytest.mark.parametrize("probe", PROBES, ids=probe_id)
def test_enabled_false_drops_only_that_probe(render: RenderFn, probe: tuple[str, str]) -> None:
    component, name = probe
    changed = render(with_all_on({component: {name: {"enabled": False}}}))
    assert name not in changed.container(component)
    for other_component, other in PROBES:
        if (other_component, other) != probe:
            assert other in changed.container(other_component), (other_component, other)


@pytest.mark.parametrize("helm", HELM_VERSIONS)
def test_disabled_probe_defaults_drop_every_probe_a_component_does_not_enable(
    render: RenderFn, helm: str
) -> None:
    changed = render(
        with_all_on({"probeDefaults": {"enabled": False}, "worker": {"livenessProbe": {"enabled": True}}}),
        helm=helm,
    )
    for component, probe in PROBES:
        present = probe in changed.container(component)
        assert present == ((component, probe) == ("worker", "livenessProbe")), (component, probe)


# (id, overrides, helm4's message, helm3's message)
BAD_PROBES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "string-period",
        {"worker": {"livenessProbe": {"periodSeconds": "30s"}}},
        "at '/worker/livenessProbe/periodSeconds': got string, want integer",
        "worker.livenessProbe.periodSeconds: Invalid type. Expected: integer, given: string",
    ),
    (
        "string-enabled",
        {"rabbitmq": {"startupProbe": {"enabled": "no"}}},
        "at '/rabbitmq/startupProbe/enabled': got string, want boolean",
        "rabbitmq.startupProbe.enabled: Invalid type. Expected: boolean, given: string",
    ),
    (
        "fractional-timeout",
        {"flower": {"readinessProbe": {"timeoutSeconds": 1.5}}},
        "at '/flower/readinessProbe/timeoutSeconds': got number, want integer",
        "flower.readinessProbe.timeoutSeconds: Invalid type. Expected: integer, given: number",
    ),
    (
        "zero-failure-threshold",
        {"producer": {"livenessProbe": {"failureThreshold": 0}}},
        "at '/producer/livenessProbe/failureThreshold': minimum: got 0, want 1",
        "producer.livenessProbe.failureThreshold: Must be greater than or equal to 1",
    ),
    (
        "unknown-key",
        {"beat": {"readinessProbe": {"period": 5}}},
        "at '/beat/readinessProbe': additional properties 'period' not allowed",
        "beat.readinessProbe: Additional property period is not allowed",
    ),
    (
        "string-default",
        {"probeDefaults": {"periodSeconds": "15"}},
        "at '/probeDefaults/periodSeconds': got string, want integer",
        "probeDefaults.periodSeconds: Invalid type. Expected: integer, given: string",
    ),
    (
        "default-removed",
        {"probeDefaults": {"timeoutSeconds": None}},
        "at '/probeDefaults': missing property 'timeoutSeconds'",
        "probeDefaults: timeoutSeconds is required",
    ),
]


@pytest.mark.parametrize("helm", HELM_VERSIONS)
@pytest.mark.parametrize(("overrides", "helm4_message", "helm3_message"),
                         [case[1:] for case in BAD_PROBES], ids=[case[0] for case in BAD_PROBES])  # fmt: skip
def test_schema_refuses_a_bad_probe_value_naming_it(
    render_error: RenderErrorFn, helm: str, overrides: dict[str, Any], helm4_message: str, helm3_message: str
) -> None:
    stderr = render_error(with_all_on(overrides), helm=helm)
    assert (helm4_message if helm == "helm4" else helm3_message) in stderr
