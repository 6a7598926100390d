"""``taskqueue beat`` against the real broker: the scheduled ``add`` tasks arrive and run; its heartbeat
probe passes while beat's loop turns and fails once it is wedged (stopped with SIGSTOP) or stopped."""

from __future__ import annotations

import ast
import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from taskqueue.private_broker import PrivateBroker
from tests.support.events import TaskEvents
from tests.support.processes import VENV_BIN, Processes
from tests.support.waiting import wait_until
from tests.support.workers import start_worker

pytestmark = pytest.mark.integration

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


Run = tuple[str, tuple[object, ...], tuple[tuple[str, object], ...], str]


def runs(events: TaskEvents, worker: subprocess.Popen[bytes]) -> list[Run]:
    """(task name, args, kwargs items, result) of each task ``worker`` ran, from its task events (which
    carry the arguments and the result as their repr)."""
    received, succeeded = events.of(f"celery.{worker.pid}@")
    calls = {e["uuid"]: e for e in received}
    found: list[Run] = []
    for event in succeeded:
        call = calls.get(event["uuid"])
        if call is not None:
            args, kwargs = ast.literal_eval(call["args"]), ast.literal_eval(call["kwargs"])
            found.append((call["name"], tuple(args), tuple(sorted(kwargs.items())), event["result"]))
    return found


def test_scheduled_add_tasks_arrive_and_run(
    processes: Processes, worker_env: dict[str, str], broker_url: str
) -> None:
    worker = start_worker(processes, worker_env)
    events = TaskEvents(broker_url)
    schedule: list[dict[str, object]] = [
        {"name": "add-fast", "task": "taskqueue.tasks.add", "every": 0.5, "args": [20, 22]},
        {"name": "add-kwargs", "task": "taskqueue.tasks.add", "every": 1, "kwargs": {"x": 1, "y": 2},
         "expires": 30},
        # Not due during the test (midnight on January 1st): parsed and installed, not sent.
        {"name": "add-never", "task": "taskqueue.tasks.add", "crontab": "0 0 1 1 *", "args": [0, 0]},
    ]
    env = beat_env(worker_env, schedule)
    beat = processes.taskqueue("beat", env=env)

    fast: Run = ("taskqueue.tasks.add", (20, 22), (), "42")
    keywords: Run = ("taskqueue.tasks.add", (), (("x", 1), ("y", 2)), "3")
    with events:
        events.wait(
            lambda: runs(events, worker).count(fast) >= 4 and runs(events, worker).count(keywords) >= 2,
            timeout=60,
            what="the worker to run 4 add(20, 22) and 2 add(x=1, y=2) that beat scheduled",
            detail=lambda: f"beat log:\n{processes.tail(beat)}\nworker log:\n{processes.tail(worker)}",
        )
        assert set(runs(events, worker)) == {fast, keywords}, "only the scheduled tasks ran"
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
    processes: Processes, worker_env: dict[str, str], broker_url: str
) -> None:
    """No BEAT_SCHEDULE: add(2, 3) every 5 s, the original's producer through beat."""
    worker = start_worker(processes, worker_env)
    with TaskEvents(broker_url) as events:
        beat = processes.taskqueue("beat", env=beat_env(worker_env, None))
        events.wait(lambda: len(runs(events, worker)) >= 2, timeout=30,
                    what="two add(2, 3) from beat's default schedule",
                    detail=lambda: f"beat log:\n{processes.tail(beat)}")
        assert set(runs(events, worker)) == {("taskqueue.tasks.add", (2, 3), (), "5")}
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


def test_beat_rides_out_a_broker_outage(
    processes: Processes, worker_env: dict[str, str], private_broker: PrivateBroker
) -> None:
    """Broker down: beat stays alive (liveness passes: a restart would not help) but not ready, and its
    loop keeps the heartbeat fresh; broker back: it sends again and is ready."""
    env = {**beat_env(worker_env, [{"name": "add", "task": "taskqueue.tasks.add", "every": 0.5,
                                    "args": [1, 1]}]),
           "BROKER_URL": private_broker.url, "HEALTH_MAX_AGE": "30"}
    beat = processes.taskqueue("beat", env=env)
    wait_until(lambda: health_beat(env).returncode == 0, timeout=30, what="beat ready",
               detail=lambda: f"probe: {health_beat(env).stderr}\nbeat log:\n{processes.tail(beat)}")
    sent_before = processes.output(beat).count("Sending due task add ")

    private_broker.stop()
    wait_until(lambda: health_beat(env).returncode == 1, timeout=60, what="beat not ready during the outage",
               detail=lambda: f"beat log:\n{processes.tail(beat)}")
    assert "is broker-unavailable" in health_beat(env).stderr
    # Alive for longer than a heartbeat interval: the loop turns while every send fails.
    for _ in range(3):
        alive = health_beat(env, "--liveness")
        assert alive.returncode == 0, alive.stderr
        assert "alive, broker-unavailable" in alive.stdout
        subprocess.run(["sleep", "2"], check=True)
    assert beat.poll() is None, "beat must survive the outage"
    failures = [line for line in processes.output(beat).splitlines() if "could not send add" in line]
    assert failures and "Traceback" not in processes.output(beat), "one line per failed send"
    assert all("ERROR/MainProcess] beat: could not send add (taskqueue.tasks.add): Couldn't apply scheduled "
               "task add: " in line for line in failures), failures[:3]

    private_broker.start()
    wait_until(lambda: health_beat(env).returncode == 0, timeout=120, interval=1,
               what="beat ready again after the broker came back",
               detail=lambda: f"probe: {health_beat(env).stderr}\nbeat log:\n{processes.tail(beat)}")
    wait_until(lambda: processes.output(beat).count("Sending due task add ") > sent_before + 3, timeout=30,
               what="beat to send again")
    assert processes.stop(beat, sig=signal.SIGTERM) == 0
