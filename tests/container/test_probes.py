"""The chart's probes, executed inside the containers they belong to, as the kubelet executes them."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from tests.container.pods import PROBE_FIELDS, Pods
from tests.container.release import CONTAINER_TIMEOUT, Release, Render, start_ready
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.container, pytest.mark.timeout(CONTAINER_TIMEOUT)]


def test_every_declared_probe_passes_inside_its_container(release: Release) -> None:
    outcomes: dict[str, str] = {}
    for container in (release.worker, release.producer, release.flower):
        declared = [kind for kind in PROBE_FIELDS if container.source.probe(kind)]
        assert declared, f"{container.source.component} declares no probe"
        for kind in declared:
            result = container.wait_probe(kind)
            outcome = (result.stdout + result.stderr).strip()
            assert result.returncode == 0, f"{container.source.component} {kind}: {outcome}"
            outcomes[f"{container.source.component} {kind}"] = outcome
    # The chart's defaults: startup, liveness and readiness for the worker and Flower; the producer has no
    # startup probe (its liveness passes while it waits for the broker).
    assert sorted(outcomes) == [
        "flower livenessProbe", "flower readinessProbe", "flower startupProbe",
        "producer livenessProbe", "producer readinessProbe",
        "worker livenessProbe", "worker readinessProbe", "worker startupProbe",
    ]
    assert "consuming" in outcomes["worker livenessProbe"]
    assert "publishing to" in outcomes["producer readinessProbe"]
    assert "/healthcheck answered 'OK'" in outcomes["flower readinessProbe"]


def test_worker_liveness_fails_once_its_process_is_stopped(pods: Pods, isolated_render: Render) -> None:
    worker = start_ready(pods, isolated_render.workload("worker"))
    assert worker.probe("livenessProbe").returncode == 0
    # tini is the container's PID 1; its one child is the Celery main process, whose event loop writes
    # the heartbeat the probe reads (the pool processes cannot keep it fresh).
    children = psutil.Process(worker.main_pid()).children()
    assert len(children) == 1 and "worker" in children[0].cmdline(), [c.cmdline() for c in children]
    main = children[0]
    max_age = float(isolated_render.env_value("worker", "HEALTH_MAX_AGE"))
    main.send_signal(signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()

        def failing() -> str | None:
            result = worker.probe("livenessProbe")
            return result.stderr if result.returncode == 1 else None

        reason = wait_until(failing, timeout=max_age + 30, interval=1,
                            what="the liveness probe to fail for the stopped worker")
        # Not before the heartbeat is older than HEALTH_MAX_AGE: a stopped process is not judged at once.
        assert time.monotonic() - stopped_at >= max_age - float(
            isolated_render.env_value("worker", "HEALTH_INTERVAL"))
        assert f"s old (max {max_age:g}s): worker dead or wedged" in reason, reason
    finally:
        main.send_signal(signal.SIGCONT)
    # Resumed, it beats again: the probe passes without a restart.
    wait_until(lambda: worker.probe("livenessProbe").returncode == 0, timeout=30, interval=1,
               what="the liveness probe to pass again after SIGCONT")
