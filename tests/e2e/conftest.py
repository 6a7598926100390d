"""The e2e layer needs a Kubernetes cluster (pytest-helm-charts' --kubeconfig option or KUBECONFIG). Without
one every test here is skipped before any fixture runs, so pytest-helm-charts never errors on the missing
setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).parent


def configured_kube_config(config: pytest.Config) -> Path | None:
    """The kube config pytest-helm-charts would use, when it names an existing file."""
    value = config.getoption("kubeconfig", default=None) or os.environ.get("KUBECONFIG", "")
    # KUBECONFIG may list several files; pytest-helm-charts (pykube) reads one.
    first = str(value).split(os.pathsep)[0] if value else ""
    return Path(first) if first and Path(first).is_file() else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if configured_kube_config(config) is not None:
        return
    skip = pytest.mark.skip(
        reason="no Kubernetes cluster configured: pass --kubeconfig PATH or set KUBECONFIG to an existing "
        "file"
    )
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).parents:
            item.add_marker(skip)
