"""What the chart harness renders and how: values sets, the helm CLI through pyhelm3, and the rendered
objects with finders. The fixtures that cache renders per session live in conftest.py."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kv_utils
import pytest
import yaml
from pyhelm3 import errors as helm_errors
from pyhelm3.command import Command, SafeLoader

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "celery-rabbitmq"
VENV_BIN = REPO_ROOT / ".venv" / "bin"

#: Release and namespace of every render: fixed so names and DNS names are predictable.
RELEASE = "tq"
NAMESPACE = "queues"

#: The helm binaries scripts/install-helm.sh installs; Helm 4 is the default renderer.
HELM_VERSIONS = ("helm4", "helm3")
DEFAULT_HELM = "helm4"

#: Kinds whose objects carry a pod template (or are a pod).
POD_OWNER_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod")
COMPONENT_LABEL = "app.kubernetes.io/component"

#: Environment variable names that carry a credential: they must come from a secretKeyRef. The broker
#: user (RABBITMQ_USERNAME, RABBITMQ_DEFAULT_USER) is half of a credential and travels like the password.
CREDENTIAL_ENV = re.compile(
    r"PASSWORD|PASSWD|_PASS$|SECRET|TOKEN|COOKIE|BASIC_AUTH|BROKER_URL|_KEY$|CREDENTIAL|USERNAME|_USER$"
)


# ---------------------------------------------------------------------------------------------- values sets


@dataclass(frozen=True)
class ValuesSet:
    """A named set of values: values files (in order) then overrides, as `helm -f a -f b --values -`,
    rendered as `release` in `namespace`.

    Frozen and made of hashable parts so it is the key of the session's render cache."""

    name: str
    files: tuple[Path, ...] = ()
    overrides_json: str = "{}"
    release: str = RELEASE
    namespace: str = NAMESPACE

    @classmethod
    def of(
        cls,
        name: str,
        files: Sequence[Path] = (),
        overrides: Mapping[str, Any] | None = None,
        *,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> ValuesSet:
        return cls(name, tuple(files), json.dumps(overrides or {}, sort_keys=True), release, namespace)

    @property
    def overrides(self) -> dict[str, Any]:
        overrides: dict[str, Any] = json.loads(self.overrides_json)
        return overrides

    def with_overrides(self, overrides: Mapping[str, Any], name: str | None = None) -> ValuesSet:
        label = name or f"{self.name}+{json.dumps(overrides, sort_keys=True)}"
        merged = deep_merge(self.overrides, overrides)
        return ValuesSet.of(label, self.files, merged, release=self.release, namespace=self.namespace)

    def as_release(self, release: str, namespace: str | None = None) -> ValuesSet:
        """The same values rendered as another release (and namespace)."""
        namespace = namespace or self.namespace
        return ValuesSet(
            f"{self.name}@{release}/{namespace}", self.files, self.overrides_json, release, namespace
        )

    def helm_args(self) -> list[str]:
        args: list[str] = []
        for path in self.files:
            args += ["--values", str(path)]
        if self.overrides:
            args += ["--values", "-"]  # the overrides arrive on stdin as JSON (JSON is YAML)
        return args

    def __str__(self) -> str:
        return self.name


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's merge of values: maps merge recursively, anything else (lists included) is replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def values_files() -> list[Path]:
    """The chart's own values files: chart-testing's ci/*-values.yaml and the per-environment examples."""
    return sorted(CHART_DIR.glob("ci/*-values.yaml")) + sorted(CHART_DIR.glob("environments/*-values.yaml"))


def file_values_set(path: Path) -> ValuesSet:
    return ValuesSet.of(str(path.relative_to(CHART_DIR)), [path])


DEFAULT_VALUES = ValuesSet.of("default")
PROD_VALUES_FILE = CHART_DIR / "environments" / "prod-values.yaml"

def as_values_set(values: ValuesSet | Mapping[str, Any] | None) -> ValuesSet:
    """``values`` as a ValuesSet: itself, overrides on the chart defaults, or (None, empty) the defaults."""
    if isinstance(values, ValuesSet):
        return values
    return DEFAULT_VALUES.with_overrides(values or {}, name=None) if values else DEFAULT_VALUES


#: Every named values set of the chart: the defaults and each values file. Collected at import, so the
#: parametrised tests follow the files present in the chart.
ALL_VALUES_SETS: list[ValuesSet] = [DEFAULT_VALUES, *(file_values_set(p) for p in values_files())]


def effective_values(values: ValuesSet) -> dict[str, Any]:
    """The values helm renders `values` with: the chart defaults, then each file, then the overrides."""
    merged = chart_values()
    for path in values.files:
        merged = deep_merge(merged, yaml.safe_load(path.read_text()) or {})
    return deep_merge(merged, values.overrides)


def chart_values() -> dict[str, Any]:
    """The chart's values.yaml, parsed (for tests that derive expectations from the defaults)."""
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text()) or {}


# ---------------------------------------------------------------------------------------------- helm


class HelmFailed(AssertionError):
    """A helm command that exited non-zero; `stderr` holds helm's message."""

    def __init__(self, args: Sequence[str], stderr: str) -> None:
        self.stderr = stderr
        super().__init__(f"helm {' '.join(args)} failed:\n{stderr}")


def find_helm(name: str) -> Path | None:
    candidate = VENV_BIN / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    return Path(found) if found else None


class Helm:
    """The helm CLI of one version, run through pyhelm3's command layer (it has no lint, so every
    subcommand goes through its `run`, which also maps helm's errors to exceptions)."""

    def __init__(self, name: str, executable: Path) -> None:
        self.name = name
        self.executable = executable
        self._command = Command(executable=str(executable))

    def run(self, args: Sequence[str], stdin: bytes | None = None) -> str:
        try:
            output: bytes = asyncio.run(self._command.run(list(args), stdin))
            return output.decode()
        except helm_errors.Error as exc:
            raise HelmFailed(args, exc.stderr.decode()) from None

    def version(self) -> str:
        return self.run(["version", "--template", "{{ .Version }}"]).strip()

    def _stdin(self, values: ValuesSet) -> bytes | None:
        return values.overrides_json.encode() if values.overrides else None

    def template(self, values: ValuesSet, kube_version: str) -> str:
        args = ["template", values.release, str(CHART_DIR), "--namespace", values.namespace]
        args += ["--kube-version", kube_version]
        return self.run([*args, *values.helm_args()], self._stdin(values))

    def notes(self, values: ValuesSet) -> str:
        """NOTES.txt as an install prints it (`helm template` never renders it)."""
        args = ["install", values.release, str(CHART_DIR), "--namespace", values.namespace]
        output = self.run([*args, "--dry-run=client", *values.helm_args()], self._stdin(values))
        return output.split("\nNOTES:\n", 1)[1]

    def lint(self, values: ValuesSet) -> str:
        args = ["lint", "--strict", str(CHART_DIR), "--namespace", NAMESPACE]
        return self.run([*args, *values.helm_args()], self._stdin(values))


# ---------------------------------------------------------------------------------------------- manifests


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def pod_spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any]
    if obj["kind"] == "Pod":
        spec = obj["spec"]
    elif obj["kind"] == "CronJob":
        spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        spec = obj["spec"]["template"]["spec"]
    return spec


def pod_template_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    if obj["kind"] == "Pod":
        return labels_of(obj)
    return labels_of(obj["spec"]["template"])


def all_containers(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec_of(obj)
    return [*(spec.get("initContainers") or []), *spec["containers"]]


def env_of(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's env entries by name (the whole EnvVar, so value and valueFrom stay visible)."""
    return {entry["name"]: entry for entry in container.get("env") or []}


def env_value(container: Mapping[str, Any], name: str) -> str:
    entry = env_of(container).get(name)
    assert entry is not None, f"container {container['name']} has no env {name}"
    assert "value" in entry, f"env {name} of {container['name']} is not a plain value: {entry}"
    return str(entry["value"])


def objref(obj: Mapping[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@dataclass
class Manifest:
    """The objects `helm template` rendered for one values set, with finders."""

    values: ValuesSet
    helm: str
    kube_version: str
    text: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    def find(
        self, kind: str | None = None, *, name: str | None = None, component: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.objects
            if (kind is None or obj["kind"] == kind)
            and (name is None or obj["metadata"]["name"] == name)
            and (component is None or labels_of(obj).get(COMPONENT_LABEL) == component)
        ]

    def one(self, kind: str, *, name: str | None = None, component: str | None = None) -> dict[str, Any]:
        found = self.find(kind, name=name, component=component)
        assert len(found) == 1, (
            f"[{self.values}] expected one {kind} (name={name}, component={component}), "
            f"found {[objref(o) for o in found]}"
        )
        return found[0]

    def has(self, kind: str, *, name: str | None = None, component: str | None = None) -> bool:
        return bool(self.find(kind, name=name, component=component))

    def kinds(self) -> set[str]:
        return {obj["kind"] for obj in self.objects}

    def pod_owners(self) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] in POD_OWNER_KINDS]

    def workload(self, component: str) -> dict[str, Any]:
        """The one Deployment or StatefulSet of a component."""
        found = [o for o in self.find(component=component) if o["kind"] in ("Deployment", "StatefulSet")]
        assert len(found) == 1, f"[{self.values}] expected one workload for {component}: {found}"
        return found[0]

    def container(self, component: str, name: str | None = None) -> dict[str, Any]:
        """The main container of a component's workload (by name, or the only/first non-init one)."""
        containers: list[dict[str, Any]] = pod_spec_of(self.workload(component))["containers"]
        if name is None:
            return containers[0]
        matching = [c for c in containers if c["name"] == name]
        assert matching, f"[{self.values}] {component} has no container {name}"
        return matching[0]

    def test_pods(self) -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.find("Pod")
            if "test" in (obj["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
        ]

    def broker_service(self) -> dict[str, Any]:
        """The broker Service: the non-headless Service of the rabbitmq component that serves AMQP."""
        candidates = [
            svc
            for svc in self.find("Service", component="rabbitmq")
            if svc["spec"].get("clusterIP") != "None"
            and any(p.get("name") == "amqp" or p.get("port") == 5672 for p in svc["spec"]["ports"])
        ]
        assert len(candidates) == 1, f"[{self.values}] expected one broker Service: {candidates}"
        return candidates[0]


def parse_manifest(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(text, Loader=SafeLoader) if doc]


def newest_kube_version() -> str:
    """The newest Kubernetes version kubernetes-validate ships schemas for: the default render target."""
    version: str = kv_utils.latest_version()
    return version


@dataclass(repr=False)
class RenderCache:
    """Session cache: each (helm, kube version, values set) is rendered once, failures included."""

    helms: dict[str, Helm]
    results: dict[tuple[str, str, ValuesSet], Manifest | HelmFailed] = field(default_factory=dict)
    lints: dict[tuple[str, ValuesSet], str | HelmFailed] = field(default_factory=dict)

    def helm(self, name: str) -> Helm:
        if name not in self.helms:
            pytest.skip(f"{name} not found in {VENV_BIN} or on PATH: run scripts/install-helm.sh .venv")
        return self.helms[name]

    def render_or_error(
        self, values: ValuesSet, helm: str = DEFAULT_HELM, kube_version: str | None = None
    ) -> Manifest | HelmFailed:
        kube_version = kube_version or newest_kube_version()
        key = (helm, kube_version, values)
        if key not in self.results:
            runner = self.helm(helm)
            try:
                text = runner.template(values, kube_version)
                self.results[key] = Manifest(values, helm, kube_version, text, parse_manifest(text))
            except HelmFailed as exc:
                self.results[key] = exc
        return self.results[key]

    def render_fresh(self, values: ValuesSet, helm: str = DEFAULT_HELM) -> Manifest:
        """A render outside the cache, for tests about what changes between two renders."""
        kube_version = newest_kube_version()
        text = self.helm(helm).template(values, kube_version)
        return Manifest(values, helm, kube_version, text, parse_manifest(text))

    def lint(self, values: ValuesSet, helm: str = DEFAULT_HELM) -> str | HelmFailed:
        key = (helm, values)
        if key not in self.lints:
            try:
                self.lints[key] = self.helm(helm).lint(values)
            except HelmFailed as exc:
                self.lints[key] = exc
        return self.lints[key]


#: render(values=None, *, helm="helm4", kube_version=None) -> Manifest (the `render` fixture).
RenderFn = Callable[..., Manifest]
#: render_error(values, *, helm="helm4") -> helm's stderr (the `render_error` fixture).
RenderErrorFn = Callable[..., str]


@dataclass
class HarnessReport:
    """What the chart tests add to pytest's terminal summary: per-scenario lines and running totals."""

    lines: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, counter: str, amount: int) -> None:
        self.counts[counter] = self.counts.get(counter, 0) + amount


#: Where the session keeps its HarnessReport (pytest's config stash: the `report` fixture fills it, the
#: terminal summary prints it).
HARNESS_REPORT = pytest.StashKey[HarnessReport]()
