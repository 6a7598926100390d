"""The CustomResourceDefinitions of the chart's optional features (KEDA, the Prometheus Operator), as
scripts/build-cluster.sh fetches them from the projects' own Go modules (`--data-only`: the CRD files only,
no binaries), and their openAPIV3Schema turned into a strict JSON Schema, so rendered custom resources are
checked against what the live API server would enforce rather than a hand-written copy."""

from __future__ import annotations

import copy
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-cluster.sh"

#: (apiVersion, kind)
CrdKey = tuple[str, str]


class CrdsUnavailable(RuntimeError):
    """The CRD files could not be fetched (no Go toolchain, or the module proxy unreachable)."""


@cache
def crd_directory() -> Path:
    """The directory of CRD files scripts/build-cluster.sh --data-only fetches (once; cached after)."""
    if shutil.which("go") is None:
        raise CrdsUnavailable("Go is needed to fetch the CRDs from their modules (go.dev): none on PATH")
    result = subprocess.run([str(BUILD_SCRIPT), "--data-only"], capture_output=True, text=True, timeout=600,
                            check=False)
    if result.returncode != 0:
        raise CrdsUnavailable(
            f"scripts/build-cluster.sh --data-only failed ({result.returncode}): {result.stderr}")
    directory = Path(result.stdout.strip().splitlines()[-1]) / "crds"
    if not directory.is_dir():
        raise CrdsUnavailable(f"scripts/build-cluster.sh --data-only printed no directory: {result.stdout}")
    return directory


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a structural openAPIV3Schema where an object with `properties` accepts no other field
    (the API server prunes unknown fields silently; a render that relies on one is a bug), unless it
    preserves unknown fields. Kubernetes' extensions (x-kubernetes-*) are left for jsonschema to ignore."""
    schema = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(schema)
    return schema


def schemas_of(crd: dict[str, Any], object_meta: dict[str, Any]) -> dict[CrdKey, dict[str, Any]]:
    """{(apiVersion, kind): JSON Schema} for every served version of one CRD. Its `metadata` (a bare
    `type: object` in every CRD) is replaced by `object_meta`."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schemas: dict[CrdKey, dict[str, Any]] = {}
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema["properties"]["metadata"] = object_meta
        schema["properties"]["apiVersion"] = {"const": f"{group}/{version['name']}"}
        schema["properties"]["kind"] = {"const": kind}
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
        schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def crd_schemas(object_meta: dict[str, Any], groups: tuple[str, ...]) -> dict[CrdKey, dict[str, Any]]:
    """The schemas of every CRD of `groups` in crd_directory()."""
    schemas: dict[CrdKey, dict[str, Any]] = {}
    for path in sorted(crd_directory().glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition" and crd["spec"]["group"] in groups:
                schemas.update(schemas_of(crd, object_meta))
    return schemas
