"""Which tasks a real worker runs, and how a client in a fresh interpreter reaches them (issue 7, items 7
and 8)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from celery.exceptions import NotRegistered
from kombu.connection import Connection

from taskqueue.app import dead_letter_queue_name
from tests.support.processes import VENV_BIN, Processes
from tests.support.tasks import SLEEP_TASK, with_test_tasks
from tests.support.waiting import wait_until
from tests.support.workers import start_worker

pytestmark = pytest.mark.integration

#: The sleep task production workers used to register (a way to tie up every worker, for anyone who can
#: publish), and where it lives now (tests only).
OLD_SLEEP_TASK = "taskqueue.tasks.sleep"


def run(processes: Processes, args: list[str], env: dict[str, str], name: str) -> str:
    """Run ``args`` to completion (60 s at most) and return its output; fail with it unless it exits 0."""
    process = processes.start(args, env, name)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        code = None
    assert code == 0, f"{name} exited with {code}:\n{processes.output(process)}"
    return processes.output(process)


def test_add_works_from_a_fresh_interpreter(processes: Processes, worker_env: dict[str, str]) -> None:
    """Item 7: the original's usage, ``from taskqueue.tasks import add; add.delay(2, 3).get()``, with
    nothing else imported, and ``celery -A taskqueue.app call``: both reach the worker, which returns 5."""
    worker = start_worker(processes, worker_env)
    code = "from taskqueue.tasks import add; print(add.delay(2, 3).get(timeout=30))"
    assert run(processes, [sys.executable, "-c", code], worker_env, "python-add").splitlines()[-1] == "5"

    output = run(
        processes, [str(VENV_BIN / "celery"), "-A", "taskqueue.app", "call", "taskqueue.tasks.add",
                    "--args", "[2, 3]"], worker_env, "celery-call",
    )
    # ``celery call`` prints the task id; the result (rpc://) goes to the caller, gone by now: the
    # worker's log says what it returned.
    task_id = output.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f-]{36}", task_id), output
    done = re.compile(rf"Task taskqueue\.tasks\.add\[{task_id}\] succeeded in [0-9.e-]+s: (\S+)")
    found = wait_until(lambda: done.search(processes.output(worker)), timeout=30,
                       what="the worker to run the task of celery call")
    assert found.group(1) == "5"


def dead_letter_tasks(broker_url: str, queue: str, count: int) -> list[Any]:
    """Task names of the ``count`` messages of ``queue``'s dead-letter queue, taken off it once they are
    all there (30 s at most)."""
    with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
        channel = connection.default_channel
        name = dead_letter_queue_name(queue)
        wait_until(lambda: channel.queue_declare(name, passive=True).message_count >= count, timeout=30,
                   what=f"{count} messages in {name}")
        messages = [channel.basic_get(name, no_ack=True) for _ in range(count)]
        assert channel.queue_declare(name, passive=True).message_count == 0
    return [message.headers.get("task") for message in messages]


def test_production_workers_run_no_test_task(
    processes: Processes, worker_env: dict[str, str], celery_client: Any, broker_url: str
) -> None:
    """Item 8: a worker with the production environment knows neither sleep task: each is refused as an
    unknown task (the caller gets NotRegistered, the message goes to the dead-letter queue); a worker given
    the tests' module by WORKER_TASK_MODULES runs it."""
    queue = worker_env["QUEUE_NAME"]
    production = start_worker(processes, worker_env, name="production-worker")
    for name in (OLD_SLEEP_TASK, SLEEP_TASK):
        with pytest.raises(NotRegistered):
            celery_client.send_task(name, args=(0,)).get(timeout=30)
    assert dead_letter_tasks(broker_url, queue, 2) == [OLD_SLEEP_TASK, SLEEP_TASK]
    assert celery_client.send_task("taskqueue.tasks.add", args=(2, 3)).get(timeout=30) == 5
    processes.stop(production)

    start_worker(processes, with_test_tasks(worker_env), name="test-worker")
    assert celery_client.send_task(SLEEP_TASK, args=(0.1,)).get(timeout=30) == 0.1
    with pytest.raises(NotRegistered):
        celery_client.send_task(OLD_SLEEP_TASK, args=(0,)).get(timeout=30)
