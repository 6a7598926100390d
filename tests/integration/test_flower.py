"""``taskqueue flower`` on the real broker, with a real ``taskqueue worker``, through Flower's REST API."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from celery import Celery

from taskqueue.app import ADD_TASK, create_app
from taskqueue.config import load_settings
from tests.support.flower import RunningFlower, flower_api
from tests.support.ports import free_port
from tests.support.processes import VENV_BIN, Processes
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

USER = "admin"


@dataclass
class Flower(RunningFlower):
    env: dict[str, str]


@pytest.fixture
def flower_env(runtime_env: dict[str, str]) -> dict[str, str]:
    password = secrets.token_urlsafe(16)
    return {**runtime_env, "FLOWER_PORT": str(free_port()), "FLOWER_BASIC_AUTH": f"{USER}:{password}"}


@pytest.fixture
def client_app(clean_env: pytest.MonkeyPatch, runtime_env: dict[str, str]) -> Iterator[Celery]:
    """A Celery app of this test (its broker and queue) to send ``add`` with."""
    for name in ("BROKER_URL", "QUEUE_NAME"):
        clean_env.setenv(name, runtime_env[name])
    app = create_app(load_settings(), set_as_current=False)
    yield app
    app.close()


def start_flower(processes: Processes, env: dict[str, str], name: str = "flower") -> Flower:
    process = processes.taskqueue("flower", env=env, name=name)
    prefix = env.get("FLOWER_URL_PREFIX", "").strip("/")
    url = f"http://127.0.0.1:{env['FLOWER_PORT']}/{prefix + '/' if prefix else ''}"
    user, _, password = env["FLOWER_BASIC_AUTH"].partition(":")
    flower = Flower(process, url, (user, password), env)

    def healthy() -> bool:
        assert process.poll() is None, f"flower exited {process.returncode}: {processes.output(process)}"
        try:
            return requests.get(url + "healthcheck", timeout=2).text == "OK"
        except requests.RequestException:
            return False

    wait_until(healthy, timeout=30, what="Flower's /healthcheck")
    return flower


def health_flower(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "taskqueue"), "health", "flower"], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def test_flower_lists_worker_and_add_tasks_with_auth(
    processes: Processes, flower_env: dict[str, str], client_app: Celery, queue_name: str
) -> None:
    flower = start_flower(processes, flower_env)
    worker = processes.taskqueue("worker", env=flower_env)
    worker_name = f"celery.{worker.pid}@{os.uname().nodename}"

    # /api/workers asks the workers (broadcast): ours shows with the queue it consumes.
    def worker_listed() -> dict[str, Any] | None:
        workers = flower_api(flower.url, "api/workers?refresh=1", flower.auth)
        return workers if workers and worker_name in workers else None

    workers = wait_until(worker_listed, timeout=60, what=f"{worker_name} in Flower's /api/workers")
    queues = [queue["name"] for queue in workers[worker_name].get("active_queues", [])]
    assert queue_name in queues

    results = [client_app.send_task(ADD_TASK, args=(i, 100)) for i in range(5)]
    assert [result.get(timeout=30) for result in results] == [i + 100 for i in range(5)]
    ids = {result.id for result in results}

    def tasks_seen() -> dict[str, dict[str, object]] | None:
        tasks = flower_api(flower.url, "api/tasks", flower.auth) or {}
        ours = {task_id: task for task_id, task in tasks.items() if task_id in ids}
        done = len(ours) == len(ids) and all(task["state"] == "SUCCESS" for task in ours.values())
        return ours if done else None

    ours = wait_until(tasks_seen, timeout=30, what="the add tasks as SUCCESS in Flower's /api/tasks")
    assert {task["name"] for task in ours.values()} == {ADD_TASK}
    assert {task["worker"] for task in ours.values()} == {worker_name}

    # Without credentials, or with wrong ones, the API answers 401.
    for path in ("api/workers", "api/tasks"):
        assert requests.get(flower.url + path, timeout=5).status_code == 401
        assert requests.get(flower.url + path, auth=(USER, "wrong"), timeout=5).status_code == 401

    # SIGTERM: Flower stops cleanly and promptly.
    assert processes.stop(flower.process, timeout=15) == 0
    log = processes.output(flower.process)
    assert flower.auth[1] not in log, "the basic-auth password was logged"
    assert "basic_auth=***" in log


def test_password_never_logged_even_at_debug(processes: Processes, flower_env: dict[str, str]) -> None:
    env = {**flower_env, "LOG_LEVEL": "debug"}
    flower = start_flower(processes, env)
    assert flower_api(flower.url, "api/workers", flower.auth) is not None
    processes.stop(flower.process, timeout=15)
    log = processes.output(flower.process)
    assert "Visit me at" in log
    assert flower.auth[1] not in log


def test_url_prefix_serves_under_the_prefix(processes: Processes, flower_env: dict[str, str]) -> None:
    env = {**flower_env, "FLOWER_URL_PREFIX": "/ops/flower/"}
    flower = start_flower(processes, env)
    root = f"http://127.0.0.1:{env['FLOWER_PORT']}/"
    assert flower.url == root + "ops/flower/"
    assert flower_api(flower.url, "api/tasks", flower.auth) is not None
    assert requests.get(flower.url + "api/tasks", timeout=5).status_code == 401
    # The UI's pages are under the prefix, and nothing is served outside it.
    assert requests.get(flower.url + "tasks", auth=flower.auth, timeout=5).status_code == 200
    assert requests.get(root + "api/tasks", auth=flower.auth, timeout=5).status_code == 404
    assert health_flower(env).returncode == 0


def test_health_flower_passes_while_running_and_fails_after(
    processes: Processes, flower_env: dict[str, str]
) -> None:
    flower = start_flower(processes, flower_env)
    ok = health_flower(flower_env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    processes.stop(flower.process, timeout=15)
    failed = health_flower(flower_env)
    assert failed.returncode == 1
    assert flower.auth[1] not in failed.stdout + failed.stderr


def test_port_option_wins_over_env(processes: Processes, flower_env: dict[str, str]) -> None:
    port = free_port()
    process = processes.taskqueue("flower", "--port", str(port), env=flower_env)
    user, _, password = flower_env["FLOWER_BASIC_AUTH"].partition(":")
    wait_until(lambda: flower_api(f"http://127.0.0.1:{port}/", "api/workers", (user, password)) is not None,
               timeout=30, what=f"Flower on --port {port}")
    assert process.poll() is None


def test_persistent_state_survives_a_restart(
    processes: Processes, flower_env: dict[str, str], client_app: Celery
) -> None:
    env = {**flower_env, "FLOWER_PERSISTENT": "true"}
    flower = start_flower(processes, env)
    processes.taskqueue("worker", env=env)
    wait_until(lambda: flower_api(flower.url, "api/workers?refresh=1", flower.auth), timeout=60,
               what="a worker in Flower")
    result = client_app.send_task(ADD_TASK, args=(1, 2))
    assert result.get(timeout=30) == 3
    wait_until(lambda: result.id in (flower_api(flower.url, "api/tasks", flower.auth) or {}), timeout=30,
               what="the task in Flower")
    processes.stop(flower.process, timeout=15)  # SIGTERM: Flower saves its state at exit

    again = start_flower(processes, env, name="flower-again")
    assert result.id in (flower_api(again.url, "api/tasks", again.auth) or {})


def test_refuses_to_serve_unauthenticated_on_all_interfaces(runtime_env: dict[str, str]) -> None:
    env = {**runtime_env, "FLOWER_ADDRESS": "0.0.0.0", "FLOWER_PORT": str(free_port())}
    done = subprocess.run([str(VENV_BIN / "taskqueue"), "flower"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "without authentication" in lines[0] and "FLOWER_BASIC_AUTH" in lines[0]


def test_sigint_stops_flower(processes: Processes, flower_env: dict[str, str]) -> None:
    flower = start_flower(processes, flower_env)
    assert processes.stop(flower.process, sig=signal.SIGINT, timeout=15) == 0
