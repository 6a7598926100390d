"""celery beat's rendered pod, run in the project image as the kubelet would (restricted security context,
read-only root filesystem, its emptyDirs): its scheduled ``add`` tasks run on the rendered worker, its
probes pass, and its liveness probe fails once its loop is frozen."""

from __future__ import annotations

import ast
import re
import signal
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest

from taskqueue.private_broker import PrivateBroker
from tests.container.engine import Docker
from tests.container.pods import Pods
from tests.container.release import (
    CONTAINER_TIMEOUT,
    Render,
    chart_overrides,
    queue_stats,
    render_chart,
    running_pods,
    start_ready,
)
from tests.support.events import TaskEvents
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.container, pytest.mark.timeout(CONTAINER_TIMEOUT)]


@pytest.fixture
def beat_render(container_broker: PrivateBroker, render: Render) -> Render:
    """The chart with beat on (add(20, 22) every second) and a queue of this test's own."""
    overrides = chart_overrides(container_broker, free_port(), queue=f"ct-beat-{uuid.uuid4().hex[:8]}")
    overrides["beat"] = {
        "enabled": True,
        "schedule": [{"name": "add-42", "task": "taskqueue.tasks.add", "every": 1, "args": [20, 22]}],
        "health": {"interval": 1, "maxAge": 6},
    }
    return render_chart(overrides)


@pytest.fixture
def beat_pods(docker: Docker, image_user: str, beat_render: Render) -> Iterator[Pods]:
    with running_pods(docker, image_user, beat_render) as runner:
        yield runner


def test_beat_pod_schedules_add_and_its_probes_judge_its_loop(
    beat_pods: Pods, beat_render: Render, container_broker: PrivateBroker
) -> None:
    worker = start_ready(beat_pods, beat_render.workload("worker"))
    with TaskEvents(container_broker.url) as events:
        beat = start_ready(beat_pods, beat_render.workload("beat"))

        host = f"@{worker.inspect()['Config']['Hostname']}"

        def results() -> list[str]:
            # This worker pod's runs only (the session's producer may send add(20, 22) too, elsewhere).
            received, succeeded = ([e for e in found if str(e.get("hostname", "")).endswith(host)]
                                   for found in events.of("celery."))
            beat_calls = {e["uuid"] for e in received if e["name"] == "taskqueue.tasks.add"
                          and ast.literal_eval(e["args"]) == [20, 22]}
            return [e["result"] for e in succeeded if e["uuid"] in beat_calls]

        events.wait(lambda: len(results()) >= 3, timeout=60,
                    what="the worker pod to run 3 add(20, 22) sent by the beat pod",
                    detail=lambda: f"queue: {queue_stats(container_broker, beat_render.queue)}\n"
                                   f"beat log:\n{beat.logs()[-3000:]}")
        assert set(results()) == {"42"}
    assert "Scheduler: Sending due task add-42 (taskqueue.tasks.add)" in beat.logs()
    ready, alive = beat.probe("readinessProbe"), beat.probe("livenessProbe")
    assert (ready.returncode, alive.returncode) == (0, 0), ready.stderr + alive.stderr
    assert re.match(r"beat: ok: beat \d+ scheduling 1 entry, heartbeat", ready.stdout)
    # The schedule state lives on the beat-state emptyDir (the root filesystem is read-only).
    listing = beat.exec("ls", "/var/lib/taskqueue-beat")
    assert listing.returncode == 0 and "celerybeat-schedule" in listing.stdout, listing

    # Freeze beat's process (tini is PID 1, beat its one child): the heartbeat goes stale.
    children = psutil.Process(beat.main_pid()).children()
    assert len(children) == 1 and "beat" in children[0].cmdline(), [c.cmdline() for c in children]
    children[0].send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        def failing() -> str | None:
            result = beat.probe("livenessProbe")
            return result.stderr if result.returncode == 1 else None

        reason = wait_until(failing, timeout=40, interval=1, what="beat's liveness probe to fail")
        assert "s old (max 6s): beat dead or wedged" in reason, reason
        assert time.monotonic() - stopped_at >= 6 - 1, "judged stale before HEALTH_MAX_AGE"
    finally:
        children[0].send_signal(signal.SIGCONT)
    wait_until(lambda: beat.probe("livenessProbe").returncode == 0 or None, timeout=30, interval=1,
               what="beat's liveness probe to pass again after SIGCONT")
    code, seconds = beat.stop()
    assert code == 0, beat.logs()[-2000:]
    assert seconds < 10, "beat stops at once on SIGTERM, its state saved"
