"""A Helm release on the live cluster, driven through pyhelm3 (install, upgrade, rollback, uninstall) and
the helm CLI for what pyhelm3 lacks (`helm test`)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyhelm3 import Client

from tests.support.cluster import LiveCluster

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "celery-rabbitmq"
HELM_TIMEOUT = "5m"
#: For a cluster whose pods really run (kind): the image to install, as loaded into the cluster.
IMAGE_VARIABLES = ("E2E_IMAGE_REPOSITORY", "E2E_IMAGE_TAG")


@dataclass
class HelmRelease:
    """One release of the chart in one namespace."""

    cluster: LiveCluster
    helm: Path
    name: str
    namespace: str

    @property
    def client(self) -> Client:
        return Client(executable=str(self.helm), kubeconfig=self.cluster.kubeconfig,
                      default_timeout=HELM_TIMEOUT)

    def upgrade(self, values: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """`helm upgrade --install --wait` with ``values``; returns pyhelm3's ReleaseRevision (notes,
        revision). ``options``: reuse_values, reset_values, ..."""

        async def run() -> Any:
            chart = await self.client.get_chart(CHART_DIR)
            return await self.client.install_or_upgrade_release(
                self.name, chart, dict(values or {}), namespace=self.namespace, wait=True,
                timeout=HELM_TIMEOUT, **options,
            )

        return asyncio.run(run())

    install = upgrade

    def rollback(self, revision: int) -> None:
        async def run() -> None:
            current = await self.client.get_current_revision(self.name, namespace=self.namespace)
            await current.release.rollback(revision, wait=True, timeout=HELM_TIMEOUT)

        asyncio.run(run())

    def revision(self) -> int:
        async def run() -> int:
            current = await self.client.get_current_revision(self.name, namespace=self.namespace)
            return int(current.revision)

        return asyncio.run(run())

    def test(self) -> str:
        """`helm test`; fails with helm's output unless every test pod succeeds. With the test pods' logs
        where containers run (a simulated pod has none, and `--logs` would fail for want of them)."""
        logs = [] if self.cluster.simulated else ["--logs"]
        result = subprocess.run(
            [str(self.helm), "test", self.name, "--namespace", self.namespace, "--kubeconfig",
             str(self.cluster.kubeconfig), "--timeout", HELM_TIMEOUT, *logs],
            capture_output=True, text=True, timeout=400, check=False,
        )
        assert result.returncode == 0, f"helm test {self.name} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def installed(self) -> bool:
        result = subprocess.run(
            [str(self.helm), "status", self.name, "--namespace", self.namespace, "--kubeconfig",
             str(self.cluster.kubeconfig)], capture_output=True, text=True, timeout=60, check=False,
        )
        return result.returncode == 0

    def uninstall(self) -> None:
        asyncio.run(self.client.uninstall_release(self.name, namespace=self.namespace, wait=True,
                                                  timeout=HELM_TIMEOUT))

    # --- what the release made, read from the API -------------------------------------------------------

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/instance={self.name}"

    def objects(self, kinds: str) -> list[dict[str, Any]]:
        """The release's objects of ``kinds`` (``"deployments,statefulsets"``) in its namespace."""
        items: list[dict[str, Any]] = self.cluster.json(
            "get", kinds, "-n", self.namespace, "-l", self.selector)["items"]
        return items

    def pods(self) -> list[dict[str, Any]]:
        """The release's pods, without helm test hook pods."""
        return [p for p in self.objects("pods")
                if "helm.sh/hook" not in (p["metadata"].get("annotations") or {})]

    def secret_data(self) -> dict[str, dict[str, str]]:
        """Every Secret of the release: name -> data (base64 values as stored)."""
        return {s["metadata"]["name"]: s.get("data", {}) for s in self.objects("secrets")
                if s.get("type") != "helm.sh/release.v1"}


#: Makes a HelmRelease, not yet installed (the e2e ``release_factory`` fixture).
ReleaseFactory = Callable[..., HelmRelease]
