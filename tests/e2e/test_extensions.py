"""Extension points on the live cluster: the scenario's added containers, volumes and envFrom reach the
pods the controllers create in a namespace that enforces the `restricted` Pod Security Standard, and an
added container left unhardened is refused there (README: Extending the pods, "added containers are
yours to harden")."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.rendering import RELEASE, parse_manifest
from tests.support.cluster import LiveCluster, NamespaceFactory
from tests.support.helm_release import CHART_DIR, ReleaseFactory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SCENARIO = CHART_DIR / "ci" / "extensions-values.yaml"
PREREQUISITES = Path(__file__).parent / "prerequisites" / "extensions-values.yaml"


def names(items: list[dict[str, Any]] | None) -> list[str]:
    return [item["name"] for item in items or []]


def pod_of(pods: list[dict[str, Any]], component: str) -> dict[str, Any]:
    found = [p for p in pods if p["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    assert len(found) >= 1, f"no {component} pod"
    return found[0]


def test_scenario_pods_carry_every_extension(
    release_factory: ReleaseFactory, image_values: dict[str, Any]
) -> None:
    release = release_factory()
    release.cluster.run_kubectl("apply", "-n", release.namespace, "-f", str(PREREQUISITES))
    release.install({**yaml.safe_load(SCENARIO.read_text()), **image_values})
    pods = release.pods()
    assert all(p["status"]["phase"] == "Running" for p in pods), [
        (p["metadata"]["name"], p["status"]["phase"]) for p in pods]

    producer = pod_of(pods, "producer")["spec"]
    assert names(producer["initContainers"]) == ["prepare"]
    assert names(producer["containers"]) == ["producer", "reporter"]
    main = producer["containers"][0]
    assert main["envFrom"] == [{"secretRef": {"name": "taskqueue-extra-env"}}]
    assert main["lifecycle"] == {"preStop": {"exec": {"command": ["sh", "-c", "sleep 2"]}}}
    assert {"name": "shared", "mountPath": "/var/run/shared", "readOnly": True} in main["volumeMounts"]
    shared = next(v for v in producer["volumes"] if v["name"] == "shared")
    assert shared["emptyDir"] == {"sizeLimit": "16Mi"}
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert (env["PRODUCER_RATE"], env["PRODUCER_COUNT"], env["PRODUCER_IDLE_AFTER_COUNT"]) == (
        "2", "1000", "true")
    # The chart's templates reached the added containers (tpl): the broker's own image.
    broker = pod_of(pods, "rabbitmq")["spec"]
    assert producer["containers"][1]["image"] == broker["containers"][0]["image"]
    assert names(broker["initContainers"]) == ["erlang-cookie", "check-config"]

    worker = pod_of(pods, "worker")["spec"]["containers"][0]
    assert worker["envFrom"][1] == {
        "secretRef": {"name": f"{release.name}-celery-rabbitmq-optional-env", "optional": True},
        "prefix": "EXTRA_",
    }
    beat = pod_of(pods, "beat")["spec"]["containers"][0]
    assert beat["envFrom"] == [{"secretRef": {"name": "taskqueue-extra-env"}}]
    assert {"name": "beat-extra", "mountPath": "/var/lib/beat-extra"} in beat["volumeMounts"]
    flower = pod_of(pods, "flower")["spec"]
    assert {"name": "flower-extra", "mountPath": "/var/lib/flower-extra"} in flower["containers"][0][
        "volumeMounts"]


def render_worker_pod(helm: Path, namespace: str, sidecar: dict[str, Any]) -> dict[str, Any]:
    """The worker's pod template, rendered with `sidecar` added, as a Pod to create (with the namespace's
    default ServiceAccount: the release's own is not installed here)."""
    values = json.dumps({"worker": {"extraContainers": [sidecar]}})
    text = subprocess.run(
        [str(helm), "template", RELEASE, str(CHART_DIR), "--namespace", namespace, "--values", "-",
         "--show-only", "templates/worker-deployment.yaml"],
        input=values, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    deployment = parse_manifest(text)[0]
    template = deployment["spec"]["template"]
    template["spec"]["serviceAccountName"] = "default"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "extension-check", "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}


SIDECAR = {"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "3600"],
           "resources": {"limits": {"cpu": "50m", "memory": "32Mi"}}}
HARDENED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"}}


@pytest.mark.parametrize(
    ("security_context", "refused"),
    [(None, True), (HARDENED, False)],
    ids=["unhardened-sidecar-refused", "hardened-sidecar-admitted"],
)
def test_restricted_pod_security_judges_added_containers(
    live_cluster: LiveCluster, restricted_namespace: NamespaceFactory, helm_binary: Path,
    security_context: dict[str, Any] | None, refused: bool,
) -> None:
    namespace = restricted_namespace()
    sidecar = {**SIDECAR, **({"securityContext": security_context} if security_context else {})}
    pod = json.dumps(render_worker_pod(helm_binary, namespace, sidecar))
    args = ("create", "--dry-run=server", "-n", namespace, "-f", "-")
    if not refused:
        assert "created (server dry run)" in live_cluster.run_kubectl(*args, stdin=pod)
        return
    with pytest.raises(AssertionError) as error:
        live_cluster.run_kubectl(*args, stdin=pod)
    message = str(error.value)
    assert 'violates PodSecurity "restricted:' in message
    assert 'container "sidecar" must set securityContext.allowPrivilegeEscalation=false' in message
    assert '"worker"' not in message, "the chart's own container passes"
