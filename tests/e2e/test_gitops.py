"""Secrets under GitOps on a live cluster: Argo CD and Flux render with `helm template`, where `lookup`
finds nothing. With `secrets.mode=hook` two renders are identical and, applied one after the other the way
Argo CD syncs (the pre-install hooks first, then the rest), they leave every credential unchanged: the hook
Job creates each missing Secret once, with an identity that may only get and create Secrets.

Where containers run, the Job runs in the cluster. On the simulated cluster (no container runs) its
container is played on this machine instead: the rendered command and environment, the Job's own
ServiceAccount token and the cluster CA mounted where the pod would have them (a private mount namespace),
against the live API server, so its RBAC is enforced for real."""

from __future__ import annotations

import base64
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.cluster import LiveCluster, NamespaceFactory
from tests.support.helm_release import CHART_DIR
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RELEASE = "tq"
SERVICE_ACCOUNT_DIR = "/run/secrets/kubernetes.io/serviceaccount"


def render(helm: Path, namespace: str, values: dict[str, Any]) -> str:
    return subprocess.run(
        [str(helm), "template", RELEASE, str(CHART_DIR), "--namespace", namespace, "--values", "-"],
        input=yaml.safe_dump(values), capture_output=True, text=True, check=True, timeout=120,
    ).stdout


def hook_of(obj: dict[str, Any]) -> str:
    return str((obj["metadata"].get("annotations") or {}).get("helm.sh/hook", ""))


def play_job(cluster: LiveCluster, job: dict[str, Any], namespace: str) -> None:
    """Run the Job's container here, as the pod would run it (see the module docstring)."""
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    token = cluster.run_kubectl("create", "token", pod["serviceAccountName"], "-n", namespace).strip()
    ca = cluster.json("get", "configmap", "kube-root-ca.crt", "-n", namespace)["data"]["ca.crt"]
    server = urlsplit(yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    env = {"PATH": "/usr/bin:/bin", "POD_NAMESPACE": namespace,
           "KUBERNETES_SERVICE_HOST": str(server.hostname), "KUBERNETES_SERVICE_PORT": str(server.port)}
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    with tempfile.TemporaryDirectory() as account:
        Path(account, "token").write_text(token)
        Path(account, "ca.crt").write_text(ca)
        command = [sys.executable if c == "python" else c for c in container["command"]]
        script = (f'mount -t tmpfs tmpfs /run && mkdir -p {SERVICE_ACCOUNT_DIR} && '
                  f'mount --bind "$0" {SERVICE_ACCOUNT_DIR} && exec "$@"')
        result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                                 account, *command], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"the secrets hook failed:\n{result.stdout}{result.stderr}"


def sync(cluster: LiveCluster, manifest: str, namespace: str, simulated: bool) -> None:
    """Apply one render as Argo CD syncs it: pre-install hooks by weight (the Job replaced, as its
    before-hook-creation policy says), then every other object; helm test hooks are not applied."""
    objects = [o for o in yaml.safe_load_all(manifest) if o and "test" not in hook_of(o).split(",")]
    hooks = sorted((o for o in objects if "pre-install" in hook_of(o)),
                   key=lambda o: int(o["metadata"]["annotations"].get("helm.sh/hook-weight", "0")))
    for obj in hooks:
        if obj["kind"] == "Job":
            cluster.run_kubectl("delete", "job", obj["metadata"]["name"], "-n", namespace,
                                "--ignore-not-found", "--wait")
        cluster.run_kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(obj))
        if obj["kind"] == "Job":
            if simulated:
                play_job(cluster, obj, namespace)
            else:
                cluster.run_kubectl("wait", "--for=condition=complete", f'job/{obj["metadata"]["name"]}',
                                    "-n", namespace, "--timeout=300s")
    rest = [o for o in objects if not hook_of(o)]
    cluster.run_kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(rest))


def credentials(cluster: LiveCluster, namespace: str) -> dict[str, dict[str, str]]:
    secrets = cluster.json("get", "secrets", "-n", namespace)["items"]
    return {s["metadata"]["name"]: s["data"] for s in secrets
            if s["metadata"].get("annotations", {}).get("celery-rabbitmq/created-by")}


def test_two_renders_applied_in_turn_keep_every_credential(
    live_cluster: LiveCluster, helm_binary: Path, restricted_namespace: NamespaceFactory, simulated: bool,
    image_values: dict[str, Any],
) -> None:
    namespace = restricted_namespace()
    values = {"secrets": {"mode": "hook"}, "rabbitmq": {"replicaCount": 3}, **image_values}
    first = render(helm_binary, namespace, values)
    sync(live_cluster, first, namespace, simulated)
    created = credentials(live_cluster, namespace)
    # the broker user and password, the Erlang cookie, Flower's basic auth: each generated, none empty
    assert sorted(created) == sorted(f"{RELEASE}-celery-rabbitmq-{s}"
                                     for s in ("rabbitmq", "rabbitmq-erlang-cookie", "flower"))
    assert all(base64.b64decode(v) for data in created.values() for v in data.values())

    second = render(helm_binary, namespace, values)
    assert second == first, "two renders differ: a GitOps sync would change the release"
    sync(live_cluster, second, namespace, simulated)
    assert credentials(live_cluster, namespace) == created

    statefulset = f"{RELEASE}-celery-rabbitmq-rabbitmq"
    wait_until(lambda: live_cluster.json("get", "statefulset", statefulset, "-n", namespace)["status"]
               .get("readyReplicas") == 3, timeout=120, what=f"{statefulset} ready")
