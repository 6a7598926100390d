"""The live Kubernetes cluster of the e2e layer: the one KUBECONFIG names (kind, a real cluster), or a
simulated one this module starts with scripts/cluster.sh (a real control plane built from Go modules, KWOK
nodes) and stops again. Only the cluster this module started is ever stopped."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO_ROOT / "scripts" / "cluster.sh"

#: The annotation KWOK manages its simulated nodes by.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

#: What admission enforces in every test namespace.
RESTRICTED_NAMESPACE_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}

#: Makes a namespace held to the restricted Pod Security Standard (the e2e ``restricted_namespace`` fixture).
NamespaceFactory = Callable[[], str]


@dataclass
class LiveCluster:
    """A cluster to install into: its kubeconfig, the kubectl to use, and whether its pods really run."""

    kubeconfig: Path
    kubectl: str
    name: str | None = None  # set when this module started it (and so must stop it)

    def run_kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        """``kubectl ARGS`` against this cluster; raises with kubectl's own message on failure."""
        result = subprocess.run(
            [self.kubectl, "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result.stdout

    def json(self, *args: str) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(self.run_kubectl(*args, "-o", "json"))
        return loaded

    @cached_property
    def simulated(self) -> bool:
        """True when every node is a KWOK node: pods are scheduled and admitted for real, but no container
        runs (images are never pulled)."""
        nodes = self.json("get", "nodes")["items"]
        assert isinstance(nodes, list) and nodes, "the cluster has no nodes"
        return all(KWOK_NODE_ANNOTATION in (n["metadata"].get("annotations") or {}) for n in nodes)

    def stop(self) -> None:
        if self.name is not None:
            subprocess.run([str(CLUSTER_SCRIPT), "down", self.name], check=True, timeout=300)


def start_simulated_cluster(name: str) -> LiveCluster:
    """Build (first time only, tens of minutes; progress on stderr) and start a simulated cluster."""
    started = time.monotonic()
    up = subprocess.run([str(CLUSTER_SCRIPT), "up", name], stdout=subprocess.PIPE, text=True, check=False)
    if up.returncode != 0:
        subprocess.run([str(CLUSTER_SCRIPT), "down", name], check=False, timeout=300)
        raise RuntimeError(f"scripts/cluster.sh up {name} failed with {up.returncode} (its output is above)")
    env = subprocess.run([str(CLUSTER_SCRIPT), "env", name], stdout=subprocess.PIPE, text=True, check=True)
    exports = dict(line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines())
    bin_dir = exports["PATH"].split(":")[0]
    print(f"simulated cluster {name} ready in {time.monotonic() - started:.1f} s")
    return LiveCluster(Path(up.stdout.strip().splitlines()[-1]), str(Path(bin_dir) / "kubectl"), name)


def configured_cluster() -> LiveCluster | None:
    """The cluster KUBECONFIG names, if any (kind, or any real cluster), with kubectl from PATH."""
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if not first or not Path(first).is_file():
        return None
    return LiveCluster(Path(first), "kubectl")
