"""The commands the chart puts in its containers, run for real against a live worker on the test broker.

The chart tests check the rendered objects; these check that what they name actually works: the helm test
pod's script gets 5 from add(2, 3), the worker's probes pass on a consuming worker, the producer's on a
live ``taskqueue produce`` (and fail once it is killed), and every container's arguments are a valid
``taskqueue`` command line.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.chart.rendering import (
    DEFAULT_HELM,
    Helm,
    ValuesSet,
    find_helm,
    newest_kube_version,
    parse_manifest,
)
from tests.support.processes import VENV_BIN, Processes
from tests.support.waiting import wait_until
from tests.support.workers import start_worker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    executable = find_helm(DEFAULT_HELM)
    if executable is None:
        pytest.skip(f"{DEFAULT_HELM} is not installed (scripts/setup.sh installs it)")
    helm = Helm(DEFAULT_HELM, executable)
    return parse_manifest(helm.template(ValuesSet.of("default"), newest_kube_version()))


def _local(command: list[str]) -> list[str]:
    """The container's command with its programs taken from this venv."""
    programs = {"python": sys.executable, "taskqueue": str(VENV_BIN / "taskqueue")}
    return [programs.get(command[0], command[0]), *command[1:]]


def _containers(rendered: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for obj in rendered:
        spec = obj["spec"]["template"]["spec"] if "template" in obj.get("spec", {}) else obj.get("spec", {})
        found += [(f"{obj['kind']}/{obj['metadata']['name']}", c) for c in spec.get("containers", [])]
    return found


def test_helm_test_pod_gets_five_from_a_live_worker(
    rendered: list[dict[str, Any]], processes: Processes, worker_env: dict[str, str]
) -> None:
    hook = "helm.sh/hook"
    pods = [o for o in rendered if o["kind"] == "Pod" and "test" in o["metadata"]["annotations"][hook]]
    assert len(pods) == 1, pods
    command = pods[0]["spec"]["containers"][0]["command"]
    start_worker(processes, worker_env)
    result = subprocess.run(_local(command), env=worker_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "add(2, 3) = 5" in result.stdout


def test_worker_probes_pass_on_a_consuming_worker(
    rendered: list[dict[str, Any]], processes: Processes, worker_env: dict[str, str]
) -> None:
    worker = next(c for name, c in _containers(rendered) if name.endswith("-worker"))
    probes = [worker[p]["exec"]["command"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    start_worker(processes, worker_env)
    for probe in probes:
        result = subprocess.run(_local(probe), env=worker_env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"{probe}: {result.stdout}{result.stderr}"


def test_producer_probes_pass_on_a_live_producer(
    rendered: list[dict[str, Any]], processes: Processes, worker_env: dict[str, str]
) -> None:
    producer = next(c for name, c in _containers(rendered) if name.endswith("-producer"))
    probes = [producer[p]["exec"]["command"] for p in ("livenessProbe", "readinessProbe")]
    assert all(probe[:3] == ["taskqueue", "health", "producer"] for probe in probes), probes
    # A long interval: after the first publish it only waits, and the wait keeps the heartbeat fresh.
    env = {**worker_env, "HEALTH_INTERVAL": "0.3", "HEALTH_MAX_AGE": "2"}
    process = processes.taskqueue("produce", "--interval", "3600", env=env)
    wait_until(lambda: "sent add(" in processes.output(process), timeout=30, what="the first task sent")
    time.sleep(3)  # past HEALTH_MAX_AGE since the only publish
    for probe in probes:
        result = subprocess.run(_local(probe), env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"{probe}: {result.stdout}{result.stderr}"
    processes.stop(process, sig=signal.SIGKILL)
    for probe in probes:
        result = subprocess.run(_local(probe), env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 1, f"{probe} passed on a killed producer: {result.stdout}"


def test_every_taskqueue_container_runs_a_real_command(rendered: list[dict[str, Any]]) -> None:
    checked = []
    for name, container in _containers(rendered):
        if "args" not in container or "command" in container:
            continue  # RabbitMQ's own image, or the test pod's script (run above)
        result = subprocess.run(_local(["taskqueue", *container["args"], "--help"]),
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"{name}: taskqueue {container['args']}: {result.stderr}"
        checked.append(container["args"][0])
    assert {"worker", "produce", "flower"} <= set(checked), checked
