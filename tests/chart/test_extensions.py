"""Extension points of every component's pod (README: Extending the pods): extraVolumes, extraVolumeMounts,
extraInitContainers, extraContainers, envFrom and lifecycle land exactly where they belong, through `tpl`;
the defaults add nothing; the schema and _validate.tpl refuse what the API server would."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chart.rendering import (
    CHART_DIR,
    Manifest,
    RenderErrorFn,
    RenderFn,
    all_containers,
    chart_values,
    deep_merge,
    file_values_set,
    objref,
    pod_spec_of,
)
from tests.chart.test_checkov import CHECKOV, run_checkov

SCENARIO = CHART_DIR / "ci" / "extensions-values.yaml"


@dataclass(frozen=True)
class Component:
    """A component's values key, its main container and what the chart itself puts in its pod."""

    key: str
    container: str
    init_containers: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ("tmp",)
    mounts: tuple[str, ...] = ("tmp",)
    enable: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        return self.key


COMPONENTS = [
    Component("worker", "worker"),
    Component("producer", "producer"),
    Component("flower", "flower"),
    Component(
        "rabbitmq", "rabbitmq", ("erlang-cookie",),
        volumes=("config", "erlang-cookie", "logs", "tmp", "data"), mounts=("data", "config", "logs", "tmp"),
        # No PVC (a volumeClaimTemplate): the data volume is then one of the pod's volumes.
        enable=(("persistence", {"enabled": False}),),
    ),
    Component(
        "beat", "beat",
        volumes=("tmp", "beat-state"), mounts=("tmp", "beat-state"), enable=(("enabled", True),),
    ),
]

HARDENED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
INIT = {
    "name": "prepare",
    "image": "busybox:1.36",
    "command": ["sh", "-c", "echo ok > /shared/ready"],
    "resources": RESOURCES,
    "securityContext": HARDENED,
    "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
}
SIDECAR = {
    "name": "sidecar",
    "image": "busybox:1.36",
    "args": ["sleep", "infinity"],
    "resources": RESOURCES,
    "securityContext": HARDENED,
    "volumeMounts": [{"name": "shared", "mountPath": "/shared", "readOnly": True}],
}
VOLUMES = [
    {"name": "shared", "emptyDir": {"sizeLimit": "16Mi"}},
    {"name": "certs", "secret": {"secretName": "ca"}},
]
MOUNTS = [
    {"name": "shared", "mountPath": "/var/run/shared", "readOnly": True},
    {"name": "certs", "mountPath": "/etc/ssl/extra", "readOnly": True},
]
ENV_FROM = [
    {"secretRef": {"name": "app-env"}},
    {"configMapRef": {"name": "app-settings", "optional": True}, "prefix": "APP_"},
]
LIFECYCLE = {"preStop": {"sleep": {"seconds": 5}}, "postStart": {"exec": {"command": ["true"]}}}
EVERY_EXTENSION = {
    "extraVolumes": VOLUMES,
    "extraVolumeMounts": MOUNTS,
    "extraInitContainers": [INIT],
    "extraContainers": [SIDECAR],
    "envFrom": ENV_FROM,
    "lifecycle": LIFECYCLE,
}


def overrides(component: Component, values: dict[str, Any]) -> dict[str, Any]:
    """`values` for the component, plus whatever it needs to render as tested."""
    return {component.key: deep_merge(dict(component.enable), values)}


def pod(manifest: Manifest, component: Component) -> dict[str, Any]:
    return pod_spec_of(manifest.workload(component.key))


def names(items: list[dict[str, Any]] | None) -> list[str]:
    return [item["name"] for item in items or []]


@pytest.mark.parametrize("component", COMPONENTS, ids=str)
def test_defaults_add_nothing(render: RenderFn, component: Component) -> None:
    spec = pod(render(overrides(component, {})), component)
    assert names(spec.get("initContainers")) == list(component.init_containers)
    assert names(spec["containers"]) == [component.container]
    main = spec["containers"][0]
    assert "envFrom" not in main
    assert "lifecycle" not in main, "no hooks by default (the clustered broker's preStop is tested below)"
    assert sorted(names(spec["volumes"])) == sorted(component.volumes)
    assert sorted(names(main["volumeMounts"])) == sorted(component.mounts)


@pytest.mark.parametrize("component", COMPONENTS, ids=str)
def test_every_extension_lands_in_its_place(render: RenderFn, component: Component) -> None:
    manifest = render(overrides(component, EVERY_EXTENSION))
    spec = pod(manifest, component)
    init = spec["initContainers"]
    assert names(init) == [*component.init_containers, "prepare"], "added after the chart's own"
    assert init[-1] == INIT, "passed through as given: the chart adds nothing to the user's container"
    assert names(spec["containers"]) == [component.container, "sidecar"]
    assert spec["containers"][-1] == SIDECAR
    main = manifest.container(component.key, component.container)
    assert main["envFrom"] == ENV_FROM
    assert main["lifecycle"] == LIFECYCLE
    assert spec["volumes"][-2:] == VOLUMES
    assert names(spec["volumes"][:-2]) == names(pod(render(overrides(component, {})), component)["volumes"])
    assert main["volumeMounts"][-2:] == MOUNTS
    assert sorted(names(main["volumeMounts"][:-2])) == sorted(component.mounts)
    # The chart's own init container (the broker's) is left as it was: the main container's only.
    for chart_init in init[:-1]:
        assert "shared" not in names(chart_init.get("volumeMounts")), chart_init["name"]
        assert "envFrom" not in chart_init and "lifecycle" not in chart_init, chart_init["name"]


@pytest.mark.parametrize("component", COMPONENTS, ids=str)
def test_only_the_components_own_pod_changes(render: RenderFn, component: Component) -> None:
    values = overrides(component, EVERY_EXTENSION)
    for other in COMPONENTS:  # every pod rendered (beat is off by default)
        values = deep_merge(overrides(other, {}), values)
    manifest = render(values)
    for other in COMPONENTS:
        if other is component:
            continue
        spec = pod(manifest, other)
        assert "sidecar" not in names(spec["containers"]), other
        assert "prepare" not in names(spec.get("initContainers")), other
        assert "shared" not in names(spec["volumes"]), other


@pytest.mark.parametrize("component", COMPONENTS, ids=str)
def test_extension_values_are_templates(render: RenderFn, component: Component) -> None:
    sidecar = {**SIDECAR, "image": '{{ include "celery-rabbitmq.image" . }}'}
    env_from = [{"secretRef": {"name": '{{ include "celery-rabbitmq.fullname" . }}-env'}}]
    volumes = [{"name": "release", "configMap": {"name": "{{ .Release.Name }}-files"}}]
    mounts = [{"name": "release", "mountPath": "/etc/{{ .Release.Namespace }}"}]
    manifest = render(overrides(component, {
        "extraContainers": [sidecar],
        "envFrom": env_from,
        "extraVolumes": volumes,
        "extraVolumeMounts": mounts,
    }))
    spec = pod(manifest, component)
    assert spec["containers"][-1]["image"] == "celery-rabbitmq/taskqueue:0.1.0"
    main = spec["containers"][0]
    assert main["envFrom"] == [{"secretRef": {"name": "tq-celery-rabbitmq-env"}}]
    assert spec["volumes"][-1] == {"name": "release", "configMap": {"name": "tq-files"}}
    assert main["volumeMounts"][-1] == {"name": "release", "mountPath": "/etc/queues"}


def test_an_added_container_follows_the_global_registry_through_tpl(render: RenderFn) -> None:
    sidecar = {**SIDECAR, "image": '{{ include "celery-rabbitmq.image" . }}'}
    manifest = render(
        {"global": {"imageRegistry": "mirror.example.com"}, "worker": {"extraContainers": [sidecar]}}
    )
    assert pod(manifest, COMPONENTS[0])["containers"][-1]["image"] == (
        "mirror.example.com/celery-rabbitmq/taskqueue:0.1.0"
    )


QUORUM_WAIT = {
    "exec": {"command": ["sh", "-c", "rabbitmq-upgrade await_online_quorum_plus_one -t 90 || true"]}
}


def test_clustered_broker_keeps_its_prestop_beside_the_users_hooks(render: RenderFn) -> None:
    post_start = {"exec": {"command": ["true"]}}
    manifest = render({"rabbitmq": {"replicaCount": 3, "lifecycle": {"postStart": post_start}}})
    assert manifest.container("rabbitmq")["lifecycle"] == {"preStop": QUORUM_WAIT, "postStart": post_start}
    clustered = render({"rabbitmq": {"replicaCount": 3}})
    assert clustered.container("rabbitmq")["lifecycle"] == {"preStop": QUORUM_WAIT}


def test_users_prestop_replaces_the_brokers_quorum_wait(render: RenderFn) -> None:
    pre_stop = {"exec": {"command": ["sh", "-c", "rabbitmq-upgrade drain"]}}
    manifest = render({"rabbitmq": {"replicaCount": 3, "lifecycle": {"preStop": pre_stop}}})
    assert manifest.container("rabbitmq")["lifecycle"] == {"preStop": pre_stop}


# ---------------------------------------------------------------------------------------------- refused


@pytest.mark.parametrize("component", COMPONENTS, ids=str)
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("extraVolumes", "emptyDir", "extraVolumes': got string, want array"),
        ("extraVolumes", [{"emptyDir": {}}], "extraVolumes/0': missing property 'name'"),
        ("extraVolumeMounts", [{"name": "shared"}], "extraVolumeMounts/0': missing property 'mountPath'"),
        ("extraVolumeMounts", [{"name": "shared", "mountPath": "rel"}], "'rel' does not match pattern '^/'"),
        ("extraInitContainers", {"name": "i", "image": "x"}, "InitContainers': got object, want array"),
        ("extraContainers", [{"image": "x"}], "extraContainers/0': missing property 'name'"),
        ("extraContainers", [{"name": "sidecar"}], "extraContainers/0': missing property 'image'"),
        ("extraContainers", [{"name": "Side_car", "image": "x"}], "'Side_car' does not match pattern"),
        ("envFrom", {"secretRef": {"name": "a"}}, "envFrom': got object, want array"),
        ("envFrom", [{"prefix": "A_"}], "envFrom/0': missing property 'secretRef'"),
        (
            "envFrom",
            [{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}],
            "envFrom/0': 'oneOf' failed, subschemas 0, 1 matched",
        ),
        ("lifecycle", [], "lifecycle': got array, want object"),
        ("lifecycle", {"preStopp": {}}, "lifecycle': additional properties 'preStopp' not allowed"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 24 else None,
)
def test_schema_refuses_wrong_types(
    render_error: RenderErrorFn, component: Component, key: str, value: Any, message: str
) -> None:
    stderr = render_error({component.key: {key: value}})
    assert f"at '/{component.key}/{key}" in stderr
    assert message in stderr


def test_names_taken_by_the_chart_and_unknown_mounts_are_refused_all_at_once(
    render_error: RenderErrorFn,
) -> None:
    stderr = render_error({
        "worker": {
            "extraContainers": [{"name": "worker", "image": "x"}],
            "extraInitContainers": [{"name": "init", "image": "x"}, {"name": "init", "image": "x"}],
            "extraVolumes": [{"name": "tmp", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "nope", "mountPath": "/x"}],
        },
        "rabbitmq": {"extraInitContainers": [{"name": "erlang-cookie", "image": "x"}]},
        "flower": {"persistence": {"enabled": True, "type": "emptyDir"}, "extraVolumes": [{"name": "data"}]},
    })
    assert "6 value problem(s)" in stderr
    for line in (
        'worker.extraInitContainers: a container is named "init", which the worker pod already has '
        "(worker, init)",
        'worker.extraContainers: a container is named "worker", which the worker pod already has '
        "(worker, init)",
        'worker.extraVolumes: a volume is named "tmp", which the worker pod already has (tmp)',
        'worker.extraVolumeMounts: "nope" mounts a volume the worker pod does not have; add it to '
        "worker.extraVolumes (volumes: tmp)",
        'rabbitmq.extraInitContainers: a container is named "erlang-cookie", which the rabbitmq pod '
        "already has (rabbitmq, erlang-cookie)",
        'flower.extraVolumes: a volume is named "data", which the flower pod already has (tmp, data)',
    ):
        assert f"- {line}" in stderr


def test_a_disabled_components_extensions_are_not_checked(render: RenderFn) -> None:
    mounts = [{"name": "nope", "mountPath": "/x"}]
    manifest = render({"producer": {"enabled": False, "extraVolumeMounts": mounts}})
    assert not manifest.find(component="producer")


def test_mounting_a_chart_volume_is_allowed(render: RenderFn) -> None:
    mount = {"name": "tmp", "mountPath": "/var/tmp"}
    assert render({"worker": {"extraVolumeMounts": [mount]}}).container("worker")["volumeMounts"][-1] == mount


# ---------------------------------------------------------------------------------------------- documented


def documented_in_values_yaml(component: str, key: str) -> bool:
    """`key` of the top-level `component` block of values.yaml has a helm-docs `# --` comment."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    start = lines.index(f"{component}:")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^[A-Za-z]", lines[i])), len(lines))
    at = next(i for i in range(start, end) if lines[i].startswith(f"  {key}:"))
    above = at - 1
    while above > start and lines[above].startswith("  # ") and not lines[above].startswith("  # --"):
        above -= 1
    return lines[above].startswith("  # -- ")


@pytest.mark.parametrize("component", COMPONENTS, ids=str)
def test_every_key_is_documented_and_empty_by_default(component: Component) -> None:
    readme = (CHART_DIR / "README.md").read_text()
    defaults = chart_values()[component.key]
    for key in EVERY_EXTENSION:
        assert defaults[key] == ({} if key == "lifecycle" else []), f"{component}.{key}"
        assert documented_in_values_yaml(component.key, key), f"{component}.{key} lacks its # -- comment"
        assert f"| `{component.key}.{key}` |" in readme, f"{component}.{key} is not in the README's table"
    assert "## Extending the pods" in readme


def test_the_scenario_uses_every_extension_point() -> None:
    import yaml

    values = yaml.safe_load(SCENARIO.read_text())
    used = {key for component in values.values() for key in component}
    assert set(EVERY_EXTENSION) | {"rate", "count"} <= used
    assert set(EVERY_EXTENSION) <= set(values["producer"]), "the producer's pod takes them all at once"


def test_the_scenario_passes_checkov(render: RenderFn, tmp_path: Path) -> None:
    """Added containers are the user's to harden: the scenario's are, so checkov finds nothing."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run scripts/setup.sh")
    manifest = render(file_values_set(SCENARIO))
    spec = pod(manifest, COMPONENTS[1])
    assert names(spec["initContainers"]) == ["prepare"]
    assert names(spec["containers"]) == ["producer", "reporter"]
    manifest_file = tmp_path / "manifest.yaml"
    manifest_file.write_text(manifest.text)
    report = run_checkov(manifest_file)
    failed = sorted({f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]})
    assert report["summary"]["passed"] > 0 and not failed, failed


# ---------------------------------------------------------------------------------------------- helm test pod


def test_the_helm_test_pod_takes_env_from_and_volumes(render: RenderFn, default_manifest: Manifest) -> None:
    env_from = [{"secretRef": {"name": "{{ .Release.Name }}-tls"}}]
    manifest = render({"tests": {"envFrom": env_from, "extraVolumes": VOLUMES, "extraVolumeMounts": MOUNTS}})
    (test_pod,) = manifest.test_pods()
    (container,) = test_pod["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "tq-tls"}}]
    assert names(test_pod["spec"]["volumes"]) == ["tmp", "shared", "certs"]
    assert test_pod["spec"]["volumes"][1:] == VOLUMES
    assert container["volumeMounts"][1:] == MOUNTS
    (default_pod,) = default_manifest.test_pods()
    assert "envFrom" not in default_pod["spec"]["containers"][0]
    assert names(default_pod["spec"]["volumes"]) == ["tmp"]


@pytest.mark.parametrize(
    ("tests", "message"),
    [
        ({"extraContainers": [SIDECAR]}, "at '/tests': additional properties 'extraContainers' not allowed"),
        ({"lifecycle": LIFECYCLE}, "at '/tests': additional properties 'lifecycle' not allowed"),
        ({"extraVolumes": "ca"}, "at '/tests/extraVolumes': got string, want array"),
        (
            {"extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ca"}]},
            'tests.extraVolumeMounts: "ca" mounts a volume the tests pod does not have',
        ),
    ],
)
def test_the_helm_test_pod_refuses_what_it_does_not_take(
    render_error: RenderErrorFn, tests: dict[str, Any], message: str
) -> None:
    assert message in render_error({"tests": tests})


# ---------------------------------------------------------------------------------------------- resources

#: Every container the chart itself runs, init containers included, and the key of its resources.
RESOURCES_KEYS = {
    "worker": ("worker", "resources"),
    "producer": ("producer", "resources"),
    "flower": ("flower", "resources"),
    "rabbitmq": ("rabbitmq", "resources"),
    "erlang-cookie": ("rabbitmq", "initResources"),
    "beat": ("beat", "resources"),
    "test-add": ("tests", "resources"),
    "create-secrets": ("secrets", "hookResources"),
}


def test_every_chart_container_has_a_resources_key(render: RenderFn) -> None:
    """With every pod rendered (beat, the secrets hook): each container, init containers included, takes
    its resources from a key of its own, and a new container without one fails here."""
    manifest = render({"beat": {"enabled": True}, "secrets": {"mode": "hook"}})
    defaults = chart_values()
    found = {c["name"]: c for owner in manifest.pod_owners() for c in all_containers(owner)}
    assert set(found) == set(RESOURCES_KEYS)
    for name, (component, key) in RESOURCES_KEYS.items():
        assert found[name]["resources"] == defaults[component][key], name


def test_every_container_has_requests_and_a_memory_limit(manifest: Manifest) -> None:
    """Each values set, the extensions scenario's added containers included."""
    missing = [
        f"{objref(owner)}/{container['name']}"
        for owner in manifest.pod_owners()
        for container in all_containers(owner)
        if not {"cpu", "memory"} <= set((container.get("resources") or {}).get("requests") or {})
        or "memory" not in ((container.get("resources") or {}).get("limits") or {})
    ]
    assert not missing, f"[{manifest.values}] without requests or memory limit: {missing}"
