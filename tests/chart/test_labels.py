"""app.kubernetes.io labels on every object; selectors that match their pods and never change across
upgrades; object names that do not depend on replica counts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import (
    DEFAULT_VALUES,
    RELEASE,
    HelmFailed,
    Manifest,
    RenderCache,
    RenderFn,
    labels_of,
    objref,
    pod_template_labels,
)

RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
#: Labels whose value changes with a chart or app upgrade: they must never be in an immutable selector.
VOLATILE_LABELS = ("app.kubernetes.io/version", "helm.sh/chart")
SELECTOR_OWNERS = ("Deployment", "StatefulSet")


def selector_labels(obj: dict[str, Any]) -> dict[str, str]:
    """The label selector an object uses to pick pods (matchLabels form)."""
    if obj["kind"] == "Service":
        return dict(obj["spec"].get("selector") or {})
    if obj["kind"] == "NetworkPolicy":
        return dict(obj["spec"]["podSelector"].get("matchLabels") or {})
    return dict(obj["spec"]["selector"].get("matchLabels") or {})


def pods_selected(manifest: Manifest, selector: dict[str, str]) -> list[str]:
    return [
        objref(owner)
        for owner in manifest.find()
        if owner["kind"] in SELECTOR_OWNERS and selector.items() <= pod_template_labels(owner).items()
    ]


def test_every_object_has_the_recommended_labels(manifest: Manifest) -> None:
    missing = [
        f"{objref(obj)}: {[label for label in RECOMMENDED_LABELS if not labels_of(obj).get(label)]}"
        for obj in manifest.objects
        if not all(labels_of(obj).get(label) for label in RECOMMENDED_LABELS)
    ]
    assert not missing, f"[{manifest.values}] objects missing labels:\n" + "\n".join(missing)
    assert {labels_of(o)["app.kubernetes.io/managed-by"] for o in manifest.objects} == {"Helm"}
    assert {labels_of(o)["app.kubernetes.io/instance"] for o in manifest.objects} == {RELEASE}


def test_pod_templates_carry_name_instance_component(manifest: Manifest) -> None:
    for owner in manifest.pod_owners():
        labels = pod_template_labels(owner)
        for label in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"):
            assert labels.get(label), f"[{manifest.values}] {objref(owner)} pods lack {label}"


def test_workload_selectors_match_their_pods_and_are_stable(manifest: Manifest) -> None:
    for owner in manifest.find():
        if owner["kind"] not in SELECTOR_OWNERS:
            continue
        selector = selector_labels(owner)
        assert selector, f"{objref(owner)} selects everything"
        assert selector.items() <= pod_template_labels(owner).items(), objref(owner)
        assert not set(selector) & set(VOLATILE_LABELS), f"{objref(owner)}: volatile label in its selector"


def test_services_and_budgets_select_exactly_one_workload(manifest: Manifest) -> None:
    for obj in manifest.find("Service") + manifest.find("PodDisruptionBudget"):
        selector = selector_labels(obj)
        assert not set(selector) & set(VOLATILE_LABELS), objref(obj)
        selected = pods_selected(manifest, selector)
        assert len(selected) == 1, f"[{manifest.values}] {objref(obj)} selects {selected}"


def test_network_policies_select_pods_of_this_release(manifest: Manifest) -> None:
    for policy in manifest.find("NetworkPolicy"):
        selector = selector_labels(policy)
        assert selector.get("app.kubernetes.io/instance") == RELEASE, objref(policy)
        assert pods_selected(manifest, selector), f"[{manifest.values}] {objref(policy)} selects no pod"


SCALE_OVERRIDES = [
    {"worker": {"replicaCount": 9}},
    {"producer": {"replicaCount": 3}},
    {"flower": {"replicaCount": 2}},
    {"rabbitmq": {"replicaCount": 3}},
    {"image": {"tag": "9.9.9"}},
]


@pytest.mark.parametrize("overrides", SCALE_OVERRIDES, ids=lambda o: next(iter(o)))
def test_names_and_selectors_stable_across_overrides(
    render: RenderFn, default_manifest: Manifest, overrides: dict[str, Any]
) -> None:
    scaled = render(overrides)
    before = {objref(o): o for o in default_manifest.objects}
    after = {objref(o): o for o in scaled.objects}
    # Scaling may add objects (a clustered broker's RBAC and PDB) but must not rename or drop any.
    assert before.keys() <= after.keys(), f"renamed or dropped: {sorted(before.keys() - after.keys())}"
    for ref, obj in before.items():
        if obj["kind"] in (*SELECTOR_OWNERS, "Service", "PodDisruptionBudget"):
            assert selector_labels(obj) == selector_labels(after[ref]), f"{ref} selector changed"


def test_full_name_override_prefixes_every_name(render: RenderFn) -> None:
    manifest = render({"fullnameOverride": "jobs", "rabbitmq": {"service": {"name": ""}}})
    names = [o["metadata"]["name"] for o in manifest.objects]
    assert all(name.startswith("jobs") for name in names), names


def test_common_labels_reach_every_object(render: RenderFn) -> None:
    manifest = render({"commonLabels": {"team": "payments"}})
    assert all(labels_of(obj).get("team") == "payments" for obj in manifest.objects)
    for owner in manifest.find():
        if owner["kind"] in SELECTOR_OWNERS:
            assert "team" not in selector_labels(owner), "commonLabels must not change selectors"


def test_names_fit_dns_labels(manifest: Manifest) -> None:
    for obj in manifest.objects:
        limit = 63 if obj["kind"] in ("Service", "StatefulSet") else 253
        assert len(obj["metadata"]["name"]) <= limit, objref(obj)


@pytest.mark.parametrize(
    "overrides",
    [
        {"worker": {"podLabels": {"app.kubernetes.io/component": "custom"}}},
        {"rabbitmq": {"podLabels": {"app.kubernetes.io/name": "custom"}}},
        {"commonLabels": {"app.kubernetes.io/instance": "custom"}},
    ],
    ids=["worker-podLabels", "rabbitmq-podLabels", "commonLabels"],
)
def test_extra_labels_cannot_break_selectors(render_cache: RenderCache, overrides: dict[str, Any]) -> None:
    """User labels that collide with selector labels must be refused, or lose to them: otherwise the
    pod template no longer matches its immutable selector and the API server rejects the workload."""
    result = render_cache.render_or_error(DEFAULT_VALUES.with_overrides(overrides))
    if isinstance(result, HelmFailed):
        assert "Labels" in result.stderr, result.stderr
        return
    for owner in result.find():
        if owner["kind"] in SELECTOR_OWNERS:
            selector, labels = selector_labels(owner), pod_template_labels(owner)
            assert selector.items() <= labels.items(), (
                f"{objref(owner)}: pods {labels} escape selector {selector}"
            )
