"""Installs the chart into a real cluster (pytest-helm-charts' kube_cluster and random_namespace fixtures),
waits for every pod, checks Flower has seen the producer's `add` tasks succeed, and runs `helm test`.

Skipped without a cluster (see conftest.py). The project image must be pullable by the cluster: pass a values
file with its repository/tag through pytest-helm-charts' --app-config-file-path (ATS_APP_CONFIG_FILE_PATH)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykube
import pytest
import yaml
from pyhelm3 import Client
from pytest_helm_charts.clusters import Cluster

from tests.chart.rendering import CHART_DIR, find_helm
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

RELEASE = "tq-e2e"

#: Runs inside the Flower container: asks its own API (with its own basic auth, prefix and port) for tasks.
FLOWER_TASKS_SCRIPT = """
import base64, os, urllib.request
prefix = os.environ.get("FLOWER_URL_PREFIX", "").strip("/")
base = "http://127.0.0.1:%s/" % os.environ["FLOWER_PORT"]
url = base + (prefix + "/" if prefix else "") + "api/tasks?limit=200"
request = urllib.request.Request(url)
if os.environ.get("FLOWER_BASIC_AUTH"):
    token = base64.b64encode(os.environ["FLOWER_BASIC_AUTH"].encode()).decode()
    request.add_header("Authorization", "Basic " + token)
print(urllib.request.urlopen(request, timeout=10).read().decode())
"""


@pytest.fixture(scope="module")
def helm_client(kube_config: str) -> Client:
    helm = find_helm("helm4") or find_helm("helm")
    if helm is None:
        pytest.skip("no helm binary: run scripts/install-helm.sh .venv")
    return Client(executable=str(helm), kubeconfig=Path(kube_config), default_timeout="10m")


@pytest.fixture(scope="module")
def release(
    helm_client: Client, kube_cluster: Cluster, random_namespace: pykube.Namespace, values_file_path: str
) -> Iterator[str]:
    """The chart installed (and waited for) in a fresh namespace; uninstalled afterwards."""
    namespace = random_namespace.name
    values: dict[str, Any] = yaml.safe_load(Path(values_file_path).read_text()) if values_file_path else {}

    async def install() -> None:
        chart = await helm_client.get_chart(CHART_DIR)
        await helm_client.install_or_upgrade_release(
            RELEASE, chart, values, namespace=namespace, wait=True, timeout="10m"
        )

    asyncio.run(install())
    yield namespace
    asyncio.run(helm_client.uninstall_release(RELEASE, namespace=namespace, wait=True))


def release_pods(kube_cluster: Cluster, namespace: str) -> list[pykube.Pod]:
    selector = {"app.kubernetes.io/instance": RELEASE}
    return [
        pod
        for pod in pykube.Pod.objects(kube_cluster.kube_client).filter(namespace=namespace, selector=selector)
        if "helm.sh/hook" not in (pod.annotations or {})
    ]


def test_all_pods_become_ready(kube_cluster: Cluster, release: str) -> None:
    def all_ready() -> list[pykube.Pod] | None:
        pods = release_pods(kube_cluster, release)
        return pods if pods and all(pod.ready for pod in pods) else None

    pods = wait_until(all_ready, timeout=600, interval=5, what="every pod of the release to be Ready")
    components = {pod.labels.get("app.kubernetes.io/component") for pod in pods}
    assert {"worker", "producer", "flower"} <= components, f"pods of {sorted(map(str, components))} only"


def test_flower_lists_successful_add_tasks(kube_cluster: Cluster, kube_config: str, release: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is needed to query Flower inside its pod")
    flower = next(
        pod
        for pod in release_pods(kube_cluster, release)
        if pod.labels.get("app.kubernetes.io/component") == "flower"
    )

    def add_tasks_succeeded() -> int | None:
        proc = subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                kube_config,
                "-n",
                release,
                "exec",
                flower.name,
                "-c",
                "flower",
                "--",
                "python",
                "-c",
                FLOWER_TASKS_SCRIPT,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            return None
        tasks = json.loads(proc.stdout).values()
        done = [t for t in tasks if str(t.get("name", "")).endswith(".add") and t.get("state") == "SUCCESS"]
        return len(done) or None

    # The producer dispatches add() every 5 s: a few must have gone through the worker by now.
    succeeded = wait_until(
        add_tasks_succeeded, timeout=180, interval=10, what="Flower to list successful add tasks"
    )
    assert succeeded >= 1


def test_helm_test_passes(helm_client: Client, kube_config: str, release: str) -> None:
    helm = find_helm("helm4") or find_helm("helm")
    assert helm is not None
    proc = subprocess.run(
        [
            str(helm),
            "test",
            RELEASE,
            "--namespace",
            release,
            "--kubeconfig",
            kube_config,
            "--timeout",
            "5m",
            "--logs",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert proc.returncode == 0, f"helm test failed:\n{proc.stdout}\n{proc.stderr}"
    assert "add(2, 3) = 5" in proc.stdout
