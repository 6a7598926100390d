"""``taskqueue beat`` against the real broker: the scheduled ``add`` tasks arrive and run; its heartbeat
probe passes while beat's loop turns and fails once it is wedged (stopped with SIGSTOP) or stopped."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, Processes, start_worker
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

SUCCEEDED = re.compile(r"Task taskqueue\.tasks\.add\[([0-9a-f-]{36})\] succeeded in [0-9.e-]+s: (\d+)")
SENDING = re.compile(r"Scheduler: Sending due task (\S+) \(taskqueue\.tasks\.add\)")


def health_beat(env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    """The real probe command, as the kubelet runs it."""
    return subprocess.run([str(VENV_BIN / "taskqueue"), "health", "beat", *flags], env=env,
                          capture_output=True, text=True, timeout=30)


def beat_env(worker_env: dict[str, str], schedule: list[dict[str, object]] | None) -> dict[str, str]:
    env = dict(worker_env)  # a fast heartbeat: HEALTH_INTERVAL 0.5, HEALTH_MAX_AGE 5
    if schedule is not None:
        env["BEAT_SCHEDULE"] = json.dumps(schedule)
    return env


def test_scheduled_add_tasks_arrive_and_run(processes: Processes, worker_env: dict[str, str]) -> None:
    worker = start_worker(processes, worker_env)
    schedule: list[dict[str, object]] = [
        {"name": "add-fast", "task": "taskqueue.tasks.add", "every": 0.5, "args": [20, 22]},
        {"name": "add-kwargs", "task": "taskqueue.tasks.add", "every": 1, "kwargs": {"x": 1, "y": 2},
         "expires": 30},
        # Not due during the test (midnight on January 1st): parsed and installed, not sent.
        {"name": "add-never", "task": "taskqueue.tasks.add", "crontab": "0 0 1 1 *", "args": [0, 0]},
    ]
    env = beat_env(worker_env, schedule)
    beat = processes.taskqueue("beat", env=env)

    def results() -> list[int]:
        return [int(value) for _, value in SUCCEEDED.findall(processes.output(worker))]

    wait_until(
        lambda: results().count(42) >= 4 and results().count(3) >= 2,
        timeout=60,
        what="the worker to run 4 add(20, 22) and 2 add(x=1, y=2) that beat scheduled",
        detail=lambda: f"beat log:\n{processes.tail(beat)}\nworker log:\n{processes.tail(worker)}",
    )
    assert set(results()) <= {42, 3}, "only the scheduled tasks ran"
    sent = SENDING.findall(processes.output(beat))
    assert {"add-fast", "add-kwargs"} <= set(sent)
    assert "add-never" not in sent
    assert "schedule: add-fast: taskqueue.tasks.add every 0.5s" in processes.output(beat)

    ready, alive = health_beat(env), health_beat(env, "--liveness")
    assert (ready.returncode, alive.returncode) == (0, 0), ready.stderr + alive.stderr
    assert re.match(r"beat: ok: beat \d+ scheduling 3 entries, heartbeat [0-9.]+s old", ready.stdout)
    assert "guest:guest" not in processes.output(beat)

    assert processes.stop(beat, sig=signal.SIGTERM) == 0
    stopped = health_beat(env, "--liveness")
    assert stopped.returncode == 1
    assert re.search(r"beat process \d+ is gone \(last state stopped\)", stopped.stderr)
    # Celery saved each entry's last run in the state file before exiting.
    assert list(Path(env["BEAT_SCHEDULE_FILE"]).parent.iterdir())


def test_default_schedule_sends_add_every_five_seconds(
    processes: Processes, worker_env: dict[str, str]
) -> None:
    """No BEAT_SCHEDULE: add(2, 3) every 5 s, the original's producer through beat."""
    worker = start_worker(processes, worker_env)
    beat = processes.taskqueue("beat", env=beat_env(worker_env, None))
    wait_until(
        lambda: len(SUCCEEDED.findall(processes.output(worker))) >= 2,
        timeout=30,
        what="two add(2, 3) from beat's default schedule",
        detail=lambda: f"beat log:\n{processes.tail(beat)}",
    )
    assert {value for _, value in SUCCEEDED.findall(processes.output(worker))} == {"5"}
    assert set(SENDING.findall(processes.output(beat))) == {"add-every-5s"}
    assert "add-every-5s: taskqueue.tasks.add every 5s" in processes.output(beat)


def test_beat_probe_fails_when_its_loop_is_wedged(processes: Processes, worker_env: dict[str, str]) -> None:
    """SIGSTOP freezes beat's loop like a deadlock would: the heartbeat goes stale and the liveness probe
    fails, with no broker round trip; SIGCONT and it passes again."""
    env = beat_env(worker_env, [{"name": "add", "task": "taskqueue.tasks.add", "every": 60, "args": [1, 1]}])
    beat = processes.taskqueue("beat", env=env)
    wait_until(lambda: health_beat(env).returncode == 0, timeout=30, what="beat ready",
               detail=lambda: f"probe: {health_beat(env).stderr}\nbeat log:\n{processes.tail(beat)}")
    # Its loop keeps the heartbeat fresh though nothing is due for a minute (the loop wakes every 0.5 s).
    for _ in range(2):
        subprocess.run(["sleep", "3"], check=True)
        assert health_beat(env, "--liveness").returncode == 0
    beat.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: health_beat(env, "--liveness").returncode == 1, timeout=20, what="stale heartbeat")
        assert re.search(r"heartbeat is \d+s old \(max 5s\): beat dead or wedged",
                         health_beat(env, "--liveness").stderr)
    finally:
        beat.send_signal(signal.SIGCONT)
    wait_until(lambda: health_beat(env, "--liveness").returncode == 0, timeout=20,
               what="a fresh heartbeat again")


def test_bad_schedule_stops_beat_naming_the_entry(processes: Processes, worker_env: dict[str, str]) -> None:
    env = beat_env(worker_env, [{"name": "ok", "task": "taskqueue.tasks.add", "every": 5},
                                {"name": "typo", "task": "taskqueue.tasks.add", "crontab": "61 * * * *"}])
    beat = processes.taskqueue("beat", env=env)
    assert beat.wait(timeout=60) == 2
    assert processes.output(beat).strip().splitlines()[-1] == (
        "taskqueue: invalid configuration: BEAT_SCHEDULE: entry 2 ('typo'): crontab: "
        "Invalid end range: 61 > 59. (got '61 * * * *')"
    )
