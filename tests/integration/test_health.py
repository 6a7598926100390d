"""``taskqueue health worker``: live, killed, frozen worker; the zombie after a broker restart."""

from __future__ import annotations

import signal
import socket
import subprocess
from types import SimpleNamespace
from typing import Any

import pytest
from kombu.connection import Connection

from taskqueue.app import ADD_TASK, create_app, task_queue
from taskqueue.bootsteps.heartbeat import consumer_state
from taskqueue.config import Settings
from taskqueue.heartbeat import CONSUMING, DISCONNECTED, NOT_CONSUMING
from taskqueue.private_broker import PrivateBroker
from tests.support.processes import VENV_BIN, Processes
from tests.support.waiting import wait_until
from tests.support.workers import start_worker

pytestmark = pytest.mark.integration


def probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The probe exactly as Kubernetes runs it."""
    return subprocess.run(
        [str(VENV_BIN / "taskqueue"), "health", "worker"], env=env, capture_output=True, text=True, timeout=30
    )


def test_health_passes_on_live_worker_and_fails_once_killed(
    processes: Processes, worker_env: dict[str, str]
) -> None:
    worker = start_worker(processes, worker_env)
    live = probe(worker_env)
    assert live.returncode == 0, live.stderr
    assert live.stdout.startswith(f"worker: ok: worker {worker.pid} consuming {worker_env['QUEUE_NAME']}")

    processes.stop(worker, sig=signal.SIGKILL)
    dead = probe(worker_env)
    assert dead.returncode == 1
    assert dead.stderr.strip() == (
        f"worker: unhealthy: worker process {worker.pid} is gone (last state consuming)"
    )
    assert len(dead.stderr.strip().splitlines()) == 1


def test_health_fails_when_heartbeat_goes_stale(processes: Processes, worker_env: dict[str, str]) -> None:
    # A worker frozen by SIGSTOP (a wedged event loop, as far as the file can tell) stops refreshing it.
    worker = start_worker(processes, worker_env)
    worker.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: probe(worker_env).returncode == 1, timeout=30, what="probe to fail: frozen worker")
        assert "old (max 5s): worker dead or wedged" in probe(worker_env).stderr
    finally:
        worker.send_signal(signal.SIGCONT)
    wait_until(lambda: probe(worker_env).returncode == 0, timeout=30, what="probe to pass after SIGCONT")


def test_health_works_with_remote_control_disabled(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    # Nothing in the probe uses remote control: the usual `inspect ping` probe breaks without it, ours not.
    env = {**worker_env, "WORKER_REMOTE_CONTROL": "false"}
    worker = start_worker(processes, env)
    assert probe(env).returncode == 0
    replies = celery_client.control.ping(timeout=1.0)
    assert not any(str(worker.pid) in name for reply in replies for name in reply)


def test_zombie_after_broker_restart_is_caught_then_recovers(
    processes: Processes, worker_env: dict[str, str], private_broker: PrivateBroker
) -> None:
    """The case other charts miss: the broker restarts under a live worker. While the worker consumes
    nothing the probe fails (with the reason), although the process is alive; once the worker has
    reconnected and consumes again, the probe passes and tasks run."""
    env = {**worker_env, "BROKER_URL": private_broker.url}
    worker = start_worker(processes, env)
    assert probe(env).returncode == 0

    private_broker.stop()
    failed = wait_until(
        lambda: (lambda result: result if result.returncode == 1 else None)(probe(env)),
        timeout=30,
        what="probe to fail while the broker is down",
    )
    assert worker.poll() is None, "the worker process is alive: a ping-style probe would call it healthy"
    # The worker says so at once (its consumer stops): long before its heartbeat could go stale.
    assert "is disconnected: broker connection lost" in failed.stderr, failed.stderr

    private_broker.start()
    wait_until(lambda: probe(env).returncode == 0, timeout=120, interval=1, what="worker consuming again")
    settings = Settings(broker_url=private_broker.url, queue_name=env["QUEUE_NAME"])  # type: ignore[arg-type]
    app = create_app(settings)
    try:
        assert app.send_task(ADD_TASK, args=(20, 22)).get(timeout=30) == 42
    finally:
        app.close()
    assert "guest:guest" not in processes.output(worker)


def test_connected_but_not_consuming_is_reported(broker_url: str, queue_name: str) -> None:
    """The heartbeat's judgement on real kombu objects: a consumer whose queue consumption was cancelled
    on a live connection is "not-consuming", the zombie state; consuming again is healthy."""
    settings = Settings(broker_url=broker_url, queue_name=queue_name)  # type: ignore[arg-type]
    queue = task_queue(settings)
    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        consumer = connection.Consumer([queue], callbacks=[lambda body, message: None])
        state = SimpleNamespace(connection=connection, task_consumer=consumer)
        consumer.consume()
        assert consumer_state(state, [queue_name]) == (CONSUMING, "")
        consumer.cancel_by_queue(queue_name)
        assert consumer_state(state, [queue_name]) == (
            NOT_CONSUMING, f"connected but not consuming queue(s) {queue_name}"
        )
        consumer.add_queue(queue)
        consumer.consume()
        assert consumer_state(state, [queue_name])[0] == CONSUMING
        consumer.channel.close()
        assert consumer_state(state, [queue_name]) == (NOT_CONSUMING, "task channel closed")
        connection.release()
        assert consumer_state(state, [queue_name])[0] == DISCONNECTED


def test_worker_that_stopped_consuming_fails_the_probe(
    processes: Processes, worker_env: dict[str, str], celery_client: Any
) -> None:
    """A live, connected worker that consumes no queue (here: told to by remote control, as a broker-side
    cancel would) answers ``inspect ping`` but does no work: the probe must fail, naming the queue."""
    queue = worker_env["QUEUE_NAME"]
    worker = start_worker(processes, worker_env)
    name = f"celery.{worker.pid}@{socket.gethostname()}"
    celery_client.control.cancel_consumer(queue, destination=[name], reply=True, timeout=10)
    failed = wait_until(
        lambda: (lambda result: result if result.returncode == 1 else None)(probe(worker_env)),
        timeout=30,
        what="probe to fail on a worker consuming nothing",
    )
    assert f"is not-consuming: connected but not consuming queue(s) {queue}" in failed.stderr
    assert celery_client.control.ping(destination=[name], timeout=5), "alive to ping: the classic zombie"
    celery_client.control.add_consumer(queue, destination=[name], reply=True, timeout=10)
    wait_until(lambda: probe(worker_env).returncode == 0, timeout=30, what="probe to pass once consuming")
