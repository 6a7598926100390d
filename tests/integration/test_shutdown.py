"""SIGTERM gives a warm shutdown: in-flight tasks finish, those the worker reserved run too, the rest stay
queued for the next worker."""

from __future__ import annotations

import shutil
import signal
import subprocess
from typing import Any

import psutil
import pytest

from taskqueue.private_broker import PrivateBroker
from tests.support.brokers import queue_depth
from tests.support.processes import VENV_BIN, Processes
from tests.support.tasks import SLEEP_TASK, with_test_tasks
from tests.support.waiting import wait_until
from tests.support.workers import health_of, start_worker

pytestmark = pytest.mark.integration


def reserving_one_each(env: dict[str, str]) -> dict[str, str]:
    """``env`` with prefetch 1: each process reserves only the task it runs, so a third task stays queued."""
    return {**env, "WORKER_PREFETCH_MULTIPLIER": "1"}


def _warm_shutdown(
    processes: Processes, worker: subprocess.Popen[bytes], target_pid: int, env: dict[str, str], client: Any,
    stopped: str,
) -> None:
    running = [client.send_task(SLEEP_TASK, args=(3,)) for _ in range(2)]
    waiting = client.send_task(SLEEP_TASK, args=(0,))
    wait_until(
        lambda: all(f"[{r.id}] received" in processes.output(worker) for r in running),
        timeout=30,
        what="both sleep tasks running",
    )
    psutil.Process(target_pid).send_signal(signal.SIGTERM)
    # Both in-flight tasks complete although the worker was told to stop while they ran.
    assert [r.get(timeout=30) for r in running] == [3, 3]
    assert worker.wait(timeout=30) == 0
    output = processes.output(worker)
    assert "Warm shutdown" in output
    assert all(f"[{r.id}] succeeded" in output for r in running)
    assert f"[{waiting.id}] received" not in output
    # The heartbeat says stopped at once: the probe fails with a reason instead of waiting to go stale.
    result = health_of(env)
    assert not result.healthy
    assert result.reason == stopped
    # The task it never started is still queued, and the next worker runs it.
    assert queue_depth(env["BROKER_URL"], env["QUEUE_NAME"]) == 1
    start_worker(processes, env, name="worker-next")
    assert waiting.get(timeout=30) == 0


def test_sigterm_is_a_warm_shutdown(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    worker_env = reserving_one_each(with_test_tasks(worker_env))
    worker = start_worker(processes, worker_env)
    # Its PID is gone: the probe says so, with the state it wrote last.
    _warm_shutdown(processes, worker, worker.pid, worker_env, celery_client,
                   stopped=f"worker process {worker.pid} is gone (last state stopped)")


def test_sigterm_runs_out_the_reserved_tasks(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    # The default prefetch (16 per process): the tasks after the first are reserved by this worker while it
    # runs the first. The drain runs them before the worker exits, instead of bouncing them to another.
    worker_env = with_test_tasks(worker_env)
    worker = start_worker(processes, worker_env)
    running = [celery_client.send_task(SLEEP_TASK, args=(3,)) for _ in range(2)]
    reserved = celery_client.send_task(SLEEP_TASK, args=(0,))
    wait_until(
        lambda: all(f"[{r.id}] received" in processes.output(worker) for r in [*running, reserved]),
        timeout=30,
        what="the worker to receive the three sleep tasks",
    )
    worker.send_signal(signal.SIGTERM)
    assert [r.get(timeout=30) for r in [*running, reserved]] == [3, 3, 0]
    assert worker.wait(timeout=30) == 0
    output = processes.output(worker)
    assert all(f"[{r.id}] succeeded" in output for r in [*running, reserved])
    assert queue_depth(worker_env["BROKER_URL"], worker_env["QUEUE_NAME"]) == 0


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) for a PID namespace")
def test_sigterm_is_a_warm_shutdown_as_pid_1(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    # As in a container without an init: the worker is PID 1 of its namespace, where the kernel drops
    # every signal the process has no handler for.
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("no permission to create a PID namespace")
    worker_env = reserving_one_each(with_test_tasks(worker_env))
    worker = processes.start(
        ["unshare", "--pid", "--fork", "--kill-child", str(VENV_BIN / "taskqueue"), "worker"],
        worker_env,
        "worker-pid1",
    )
    wait_until(
        lambda: health_of(worker_env).healthy,
        timeout=60,
        what="PID-1 worker consuming",
        detail=lambda: f"probe: {health_of(worker_env).reason}\nworker log (tail):\n{processes.tail(worker)}",
    )
    children = psutil.Process(worker.pid).children()
    assert len(children) == 1
    pid1 = children[0]
    assert "\"pid\": 1," in open(worker_env["WORKER_HEALTH_FILE"]).read()  # noqa: SIM115 - one-off read
    # Its PID (1) is alive on the host (another process): the probe goes by the state it wrote last.
    _warm_shutdown(processes, worker, pid1.pid, worker_env, celery_client,
                   stopped="worker 1 is stopped: worker exited")


def test_sigterm_stops_a_worker_that_lost_its_broker(
    processes: Processes, worker_env: dict[str, str], private_broker: PrivateBroker
) -> None:
    """Broker gone, the worker retries its connection with no event loop turning: SIGTERM still ends it
    cleanly (exit 0, no SIGKILL after the 30 s wait), instead of waiting for the pod's grace period."""
    env = {**worker_env, "BROKER_URL": private_broker.url}
    worker = start_worker(processes, env)
    private_broker.stop()
    wait_until(
        lambda: "disconnected" in health_of(env).reason,
        timeout=30,
        what="the worker to notice the lost broker",
        detail=lambda: processes.tail(worker),
    )
    assert processes.stop(worker, sig=signal.SIGTERM, timeout=30) == 0
