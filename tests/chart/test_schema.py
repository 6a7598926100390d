"""Every rendered object of every values set, validated strictly (unknown fields are errors) against the
Kubernetes schemas of the oldest and the newest Kubernetes version the chart supports. Kinds
kubernetes-validate has no schema for (KEDA's ScaledObject and TriggerAuthentication, the Prometheus
Operator's ServiceMonitor and PrometheusRule) are validated against the projects' real CRDs, fetched from
their Go modules by scripts/build-cluster.sh --data-only (tests/support/crds.py; strict: unknown fields are
errors), the versions the simulated cluster installs: nothing is skipped."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import pytest
import yaml
from packaging.version import Version

from tests.chart.rendering import CHART_DIR, HarnessReport, Manifest, RenderFn, ValuesSet, objref
from tests.support.crds import CrdKey, CrdsUnavailable, crd_schemas

# ---------------------------------------------------------------------------------------------- versions


def supported_kube_versions() -> tuple[str, str]:
    """(oldest, newest) of the versions kubernetes-validate ships that satisfy Chart.yaml's kubeVersion
    lower bound. The newest comes from kubernetes-validate's own list, so upgrading it widens the test."""
    kube_version = str(yaml.safe_load((CHART_DIR / "Chart.yaml").read_text()).get("kubeVersion", ""))
    lower = re.search(r">=?\s*v?(\d+\.\d+)", kube_version)
    shipped = kv_utils.all_versions()
    eligible = [v for v in shipped if lower is None or Version(v) >= Version(lower.group(1))]
    assert eligible, f"kubernetes-validate ships no schema for kubeVersion {kube_version!r}: {shipped}"
    return eligible[0], eligible[-1]


OLDEST, NEWEST = supported_kube_versions()

# ---------------------------------------------------------------------------------------------- CRD schemas

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
#: A custom resource's metadata as the chart writes it (every CRD leaves `metadata` a bare object).
_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "additionalProperties": False,
}

#: What KEDA's rabbitmq scaler reads (keda.sh/docs/2.16/scalers/rabbitmq-queue, "Parameter list" and
#: "Authentication Parameters"): `username`/`password` as TriggerAuthentication parameters (overriding any
#: credentials in `host`) appear in 2.16; 2.15 knew only host, TLS and workload identity there.
RABBITMQ_SCALER_METADATA = frozenset(
    {
        "host", "protocol", "mode", "value", "activationValue", "queueName", "vhostName", "queueLength",
        "hostFromEnv", "usernameFromEnv", "passwordFromEnv", "unsafeSsl", "useRegex", "pageSize",
        "operation", "timeout", "excludeUnacknowledged",
    }
)  # fmt: skip
RABBITMQ_SCALER_AUTH_PARAMETERS = frozenset(
    {"host", "username", "password", "tls", "ca", "cert", "key", "workloadIdentityResource"}
)

#: API groups of the custom resources the chart renders; their schemas come from the real CRDs
#: (tests/support/crds.py), fetched on first use.
REAL_CRD_GROUPS = ("keda.sh", "monitoring.coreos.com")
_real_crd_schemas: dict[CrdKey, dict[str, Any]] = {}


def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The JSON Schema of a custom resource of REAL_CRD_GROUPS, from its real CRD (raises CrdsUnavailable
    when the CRDs cannot be fetched); None for any other kind."""
    if api_version.split("/")[0] not in REAL_CRD_GROUPS:
        return None
    if not _real_crd_schemas:
        _real_crd_schemas.update(crd_schemas(_OBJECT_META, REAL_CRD_GROUPS))
    return _real_crd_schemas.get((api_version, kind))

# ---------------------------------------------------------------------------------------------- tests


def validate_object(obj: dict[str, Any], kube_version: str) -> tuple[str, str | None]:
    """("kubernetes"|"crd", error or None) for one object."""
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
        return "kubernetes", None
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        return "kubernetes", f"{objref(obj)} at /{path}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError:
        try:
            schema = crd_schema(obj.get("apiVersion", ""), obj.get("kind", ""))
        except CrdsUnavailable as exc:
            return "crd", f"{objref(obj)}: its CRD schema is unavailable: {exc}"
        if schema is None:
            return "crd", f"{objref(obj)}: no Kubernetes schema and no CRD schema in this module for it"
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj), key=str)
        if errors:
            return "crd", "; ".join(
                f"{objref(obj)} at /{'/'.join(str(p) for p in e.path)}: {e.message}" for e in errors
            )
        return "crd", None


@pytest.mark.parametrize("kube_version", [OLDEST, NEWEST], ids=lambda v: f"k8s-{v}")
def test_every_object_is_valid_kubernetes(
    render: RenderFn, values_set: ValuesSet, kube_version: str, report: HarnessReport
) -> None:
    # Rendered for that version too, in case a template looks at .Capabilities.KubeVersion.
    manifest: Manifest = render(values_set, kube_version=kube_version)
    assert manifest.objects, f"[{values_set}] rendered nothing"
    errors: list[str] = []
    counts = {"kubernetes": 0, "crd": 0}
    for obj in manifest.objects:
        family, error = validate_object(obj, kube_version)
        counts[family] += 1
        if error:
            errors.append(error)
    report.lines[f"schema k8s-{kube_version} {values_set}"] = (
        f"{counts['kubernetes']} objects against Kubernetes schemas, {counts['crd']} against CRD schemas"
    )
    report.add(
        "objects validated against Kubernetes schemas (all scenarios, both versions)", counts["kubernetes"]
    )
    report.add("objects validated against CRD schemas (all scenarios, both versions)", counts["crd"])
    assert not errors, f"[{values_set}] invalid for Kubernetes {kube_version}:\n" + "\n".join(errors)


def test_keda_objects_use_what_the_rabbitmq_scaler_reads(manifest: Manifest) -> None:
    """Beyond the CRDs: trigger metadata and TriggerAuthentication parameters are names the rabbitmq scaler
    knows, and credentials reach it only through the TriggerAuthentication's Secret references."""
    auths = {a["metadata"]["name"]: a for a in manifest.find("TriggerAuthentication")}
    for scaled in manifest.find("ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["type"] == "rabbitmq"
            metadata = trigger["metadata"]
            assert set(metadata) <= RABBITMQ_SCALER_METADATA, set(metadata) - RABBITMQ_SCALER_METADATA
            assert not {"usernameFromEnv", "passwordFromEnv"} & set(metadata), "credentials from env"
            auth = auths[trigger["authenticationRef"]["name"]]
            parameters = [ref["parameter"] for ref in auth["spec"]["secretTargetRef"]]
            assert set(parameters) <= RABBITMQ_SCALER_AUTH_PARAMETERS, parameters
            assert len(parameters) == len(set(parameters)), parameters
            # Either the whole URL (credentials inside) or a bare host plus user and password.
            assert "host" in parameters or {"username", "password"} <= set(parameters), parameters


def test_kube_versions_span_the_supported_range() -> None:
    assert Version(OLDEST) < Version(NEWEST), (OLDEST, NEWEST)
    assert kv_utils.latest_version() == NEWEST


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda o: o["spec"]["triggers"][0]["metadata"].update(value=20), "is not of type 'string'"),
        (lambda o: o["spec"].update(replicas=3), "Additional properties"),
    ],
    ids=["numeric-trigger-metadata", "unknown-spec-field"],
)
def test_crd_schema_rejects_what_keda_would(mutation: Any, expected: str) -> None:
    """The CRD schemas can fail: guard against a schema that accepts anything (KEDA's own CRD leaves
    unknown fields to the API server's pruning; tests/support/crds.py makes them errors)."""
    scaled_object = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "w"},
        "spec": {
            "scaleTargetRef": {"name": "w"},
            "triggers": [{"type": "rabbitmq", "metadata": {"value": "5"}}],
        },
    }
    assert validate_object(scaled_object, NEWEST) == ("crd", None)
    mutation(scaled_object)
    _, error = validate_object(scaled_object, NEWEST)
    assert error is not None and expected in error
