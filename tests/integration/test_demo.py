"""``taskqueue demo``: add tasks reach Flower, and nothing it started outlives it (end, SIGINT, SIGTERM)."""

from __future__ import annotations

import os
import re
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.support.flower import RunningFlower, flower_api
from tests.support.ports import free_port
from tests.support.processes import Processes
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

FLOWER_LINE = re.compile(
    r"^demo: Flower at (?P<url>\S+) \(user '(?P<user>[^']+)', password '(?P<password>[^']+)'\)", re.MULTILINE
)
STARTED_LINE = re.compile(r"^demo: started (?P<name>\w+) \(pid (?P<pid>\d+)\)", re.MULTILINE)
PRIVATE_LINE = re.compile(r"^demo: started private broker (?P<node>\S+) on 127\.0\.0\.1:(?P<port>\d+) "
                          r"\(pids (?P<pids>[\d ]+), data in (?P<dir>\S+)\)", re.MULTILINE)


@dataclass
class RunningDemo(RunningFlower):
    """The demo process, with its Flower's URL and credentials, the PIDs it printed, and its output."""

    pids: dict[str, int]
    output: str


def start_demo(processes: Processes, env: dict[str, str], *args: str, startup: float = 90) -> RunningDemo:
    env = {**env, "FLOWER_PORT": str(free_port(15555))}
    process = processes.taskqueue("demo", "--interval", "0.5", *args, env=env)

    def ready() -> str | None:
        assert process.poll() is None, f"demo exited {process.returncode}:\n{processes.output(process)}"
        text = processes.output(process)
        return text if "demo: started producer" in text else None

    text = wait_until(ready, timeout=startup, what="the demo to start its producer")
    flower = FLOWER_LINE.search(text)
    assert flower, text
    pids = {match["name"]: int(match["pid"]) for match in STARTED_LINE.finditer(text)}
    assert set(pids) == {"worker", "flower", "producer"}
    return RunningDemo(process, flower["url"], (flower["user"], flower["password"]), pids, text)


def wait_for_add_tasks(demo: RunningDemo, count: int = 3) -> dict[str, dict[str, object]]:
    """The demo's own add tasks (run by its worker) that Flower shows as SUCCESS."""
    worker = f"celery.{demo.pids['worker']}@{os.uname().nodename}"

    def seen() -> dict[str, dict[str, object]] | None:
        tasks = flower_api(demo.url, "api/tasks", demo.auth) or {}
        ours = {task_id: task for task_id, task in tasks.items()
                if task.get("worker") == worker and task.get("name") == "taskqueue.tasks.add"
                and task.get("state") == "SUCCESS"}
        return ours if len(ours) >= count else None

    return wait_until(seen, timeout=40, what=f"{count} add tasks of {worker} in Flower's /api/tasks")


def descendants(pid: int) -> list[psutil.Process]:
    """Every process under ``pid`` now (psutil.Process remembers its start time: no PID-reuse confusion)."""
    return psutil.Process(pid).children(recursive=True)


def assert_none_left(recorded: list[psutil.Process]) -> None:
    left = [f"{p.pid} {p.name()}" for p in recorded if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left behind: {left}"


def test_demo_with_duration_shows_tasks_then_stops_everything(
    processes: Processes, runtime_env: dict[str, str]
) -> None:
    demo = start_demo(processes, runtime_env, "--duration", "30")
    assert demo.auth[0] == "demo"
    tasks = wait_for_add_tasks(demo)
    assert all(task["result"] is not None for task in tasks.values())
    recorded = descendants(demo.process.pid)
    assert {demo.pids["worker"], demo.pids["flower"], demo.pids["producer"]} <= {p.pid for p in recorded}

    assert demo.process.wait(timeout=90) == 0
    assert_none_left(recorded)
    output = processes.output(demo.process)
    assert "30s elapsed: stopping everything" in output
    assert "stopped producer (exit 0), flower (exit 0), worker (exit 0)" in output


def test_demo_sigint_stops_everything_it_started(processes: Processes, runtime_env: dict[str, str]) -> None:
    demo = start_demo(processes, runtime_env)
    wait_for_add_tasks(demo, count=1)
    recorded = descendants(demo.process.pid)
    assert len(recorded) >= 3

    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=90) == 0
    assert_none_left(recorded)
    assert "SIGINT received: stopping everything" in processes.output(demo.process)


def test_demo_keeps_configured_flower_password_secret(
    processes: Processes, runtime_env: dict[str, str]
) -> None:
    env = {**runtime_env, "FLOWER_BASIC_AUTH": "ops:Very-Secret-42"}
    process = processes.taskqueue("demo", "--duration", "60", env=env)

    def flower_line() -> str | None:
        text = processes.output(process)
        return text if "demo: Flower at" in text else None

    text = wait_until(flower_line, timeout=90, what="the demo's Flower line")
    assert "user 'ops', password from FLOWER_BASIC_AUTH" in text
    processes.stop(process, sig=signal.SIGTERM, timeout=60)
    assert "Very-Secret-42" not in processes.output(process)


def test_demo_starts_a_private_broker_when_none_answers(
    processes: Processes, runtime_env: dict[str, str]
) -> None:
    env = {**runtime_env, "BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"}
    demo = start_demo(processes, env, startup=150)
    private = PRIVATE_LINE.search(demo.output)
    assert private, demo.output
    node_port, data_dir = int(private["port"]), Path(private["dir"])
    assert node_port != 5672 and data_dir.is_dir()
    assert private["node"].startswith("taskqueue-demo-")

    wait_for_add_tasks(demo)
    # The node's management API is wired into Flower (FLOWER_BROKER_API): its Broker data has the queue.
    def queue_lengths() -> list[dict[str, object]] | None:
        data = flower_api(demo.url, "api/queues/length", demo.auth) or {}
        # "messages" appears with the node's first statistics of the queue (every 5 s).
        return [q for q in data.get("active_queues", [])
                if q.get("name") == runtime_env["QUEUE_NAME"] and "messages" in q]

    lengths = wait_until(queue_lengths, timeout=30, what="the demo queue in Flower's broker data")
    assert isinstance(lengths[0]["messages"], int)
    recorded = descendants(demo.process.pid)
    names = {p.name() for p in recorded}
    assert "beam.smp" in names and "epmd" in names, names

    demo.process.send_signal(signal.SIGTERM)
    assert demo.process.wait(timeout=120) == 0
    assert_none_left(recorded)
    assert not data_dir.exists()
    assert "SIGTERM received: stopping everything" in processes.output(demo.process)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", node_port), timeout=2).close()
