"""celery beat without a broker: BEAT_SCHEDULE parsing and its errors, Celery's schedule built from it,
the heartbeat probe's verdicts, and the CLI's exit code on a bad schedule."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from celery.schedules import crontab
from click.testing import CliRunner

from taskqueue.beat import celery_schedule
from taskqueue.cli import main
from taskqueue.config import ConfigError, ProbeSettings, load_probe_settings, load_settings
from taskqueue.health import check_beat
from taskqueue.heartbeat import (
    BROKER_UNAVAILABLE,
    CONSUMING,
    SCHEDULING,
    STARTING,
    STOPPED,
    Heartbeat,
    write_heartbeat,
)
from taskqueue.schedule import DEFAULT_SCHEDULE, ScheduleEntry, ScheduleError, parse_schedule

ADD = "taskqueue.tasks.add"
BAD_NAME = "name: required: letters, digits, '-', '_', '.', ':', at most 128 characters"
ONE_OF = "every: give exactly one of every (seconds) and crontab"


def entry(**fields: Any) -> dict[str, Any]:
    return {"name": "e", "task": ADD, "every": 5, **fields}


def parse(*entries: Any) -> tuple[ScheduleEntry, ...]:
    return parse_schedule(json.dumps(list(entries)))


# --- parsing --------------------------------------------------------------------------------------------


def test_default_schedule_is_add_every_five_seconds(clean_env: pytest.MonkeyPatch) -> None:
    assert (ScheduleEntry("add-every-5s", ADD, every=5.0, args=(2, 3)),) == DEFAULT_SCHEDULE
    assert load_settings().beat_schedule == DEFAULT_SCHEDULE


def test_every_field_is_read() -> None:
    schedule = parse(
        {"name": "a", "task": ADD, "every": 0.5, "args": [1, 2], "queue": "q.1", "expires": 30},
        {"name": "b", "task": "pkg.tasks.cleanup", "crontab": " 0  4 * *   mon-fri ", "kwargs": {"days": 7}},
    )
    assert schedule == (
        ScheduleEntry("a", ADD, every=0.5, args=(1, 2), queue="q.1", expires=30.0),
        ScheduleEntry("b", "pkg.tasks.cleanup", crontab="0 4 * * mon-fri", kwargs={"days": 7}),
    )
    assert schedule[0].describe() == "a: taskqueue.tasks.add to queue q.1 every 0.5s"
    assert schedule[1].describe() == "b: pkg.tasks.cleanup crontab '0 4 * * mon-fri' (UTC)"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "has no entries: beat would have nothing to send (disable beat instead)"),
        ({"name": "a"}, 'must be a JSON list of entries ([{"name": ..., "task": ..., "every": ...}])'),
        (["add"], "entry 1 must be an object with name, task and every or crontab"),
        ([entry(evry=5)], "entry 1 ('e'): evry: unknown field (known: name, task, every, crontab, args, "
                          "kwargs, queue, expires)"),
        ([entry(name="")], f"entry 1: {BAD_NAME}"),
        ([entry(name="a b")], f"entry 1 ('a b'): {BAD_NAME}"),
        ([entry(), entry(every=6)], "entry 2 ('e'): name: duplicate: each entry needs a name of its own"),
        ([entry(task=None)], "entry 1 ('e'): task: required: a Celery task name such as taskqueue.tasks.add"),
        ([entry(task="tasks add")], "entry 1 ('e'): task: required: a Celery task name such as "
                                    "taskqueue.tasks.add"),
        ([{"name": "e", "task": ADD}], f"entry 1 ('e'): {ONE_OF}"),
        ([entry(crontab="* * * * *")], f"entry 1 ('e'): {ONE_OF}"),
        ([entry(every=0)], "entry 1 ('e'): every: must be a number of seconds > 0 (got 0)"),
        ([entry(every=-1)], "entry 1 ('e'): every: must be a number of seconds > 0 (got -1)"),
        ([entry(every="5")], "entry 1 ('e'): every: must be a number of seconds > 0 (got '5')"),
        ([entry(every=True)], "entry 1 ('e'): every: must be a number of seconds > 0 (got True)"),
        ([{"name": "c", "task": ADD, "crontab": "*/5 * * *"}],
         "entry 1 ('c'): crontab: must have 5 fields (minute hour day-of-month month day-of-week), got 4 "
         "(got '*/5 * * *')"),
        ([{"name": "c", "task": ADD, "crontab": "61 * * * *"}],
         "entry 1 ('c'): crontab: Invalid end range: 61 > 59. (got '61 * * * *')"),
        ([{"name": "c", "task": ADD, "crontab": 5}],
         "entry 1 ('c'): crontab: must be a string such as '*/5 * * * *' (got 5)"),
        ([entry(args={"x": 1})], "entry 1 ('e'): args: must be a list (got {'x': 1})"),
        ([entry(kwargs=[1])], "entry 1 ('e'): kwargs: must be an object (got [1])"),
        ([entry(queue="a queue")], "entry 1 ('e'): queue: must be a queue name (letters, digits, '_', '.', "
                                   "':', '-') (got 'a queue')"),
        ([entry(expires=0)], "entry 1 ('e'): expires: must be a number of seconds > 0 (got 0)"),
    ],
)
def test_bad_entries_are_named_with_their_field(entries: Any, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(json.dumps(entries))
    assert str(caught.value) == message


def test_not_json() -> None:
    with pytest.raises(ScheduleError, match=r"^not JSON: Expecting value at line 1 column 2$"):
        parse_schedule("[")


def test_bad_schedule_is_a_config_error_naming_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BEAT_SCHEDULE", json.dumps([entry(), entry(name="x", every=0)]))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    # The message quotes the bad field; the whole JSON value is not echoed back.
    assert str(caught.value) == (
        "invalid configuration: BEAT_SCHEDULE: entry 2 ('x'): every: must be a number of seconds > 0 (got 0)"
    )


def test_cli_refuses_a_bad_schedule_with_exit_code_2(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BEAT_SCHEDULE", "[]")
    result = CliRunner().invoke(main, ["beat"])
    assert result.exit_code == 2
    assert result.output == (
        "taskqueue: invalid configuration: BEAT_SCHEDULE: has no entries: beat would have nothing to send "
        "(disable beat instead)\n"
    )


def test_beat_files_come_from_the_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("BEAT_SCHEDULE_FILE", str(tmp_path / "state" / "schedule"))
    clean_env.setenv("BEAT_HEALTH_FILE", str(tmp_path / "beat.hb"))
    settings = load_settings()
    assert settings.beat_schedule_file == tmp_path / "state" / "schedule"
    assert settings.beat_health_file == load_probe_settings().beat_health_file == tmp_path / "beat.hb"


# --- Celery's schedule -------------------------------------------------------------------------------------


def test_celery_schedule() -> None:
    schedule = celery_schedule(parse(
        {"name": "a", "task": ADD, "every": 5, "args": [2, 3]},
        {"name": "b", "task": ADD, "crontab": "*/15 4 1 * sun", "kwargs": {"x": 1, "y": 1}, "queue": "other",
         "expires": 60},
    ))
    assert schedule["a"] == {
        "task": ADD, "schedule": 5.0, "args": (2, 3), "kwargs": {}, "options": {"ignore_result": True}
    }
    b = schedule["b"]
    assert (b["args"], b["kwargs"]) == ((), {"x": 1, "y": 1})
    assert b["options"] == {"ignore_result": True, "queue": "other", "expires": 60.0}
    assert b["schedule"] == crontab(minute="*/15", hour="4", day_of_month="1", day_of_week="sun")


# --- the probe --------------------------------------------------------------------------------------------


def probe_settings(tmp_path: Path) -> ProbeSettings:
    return ProbeSettings(beat_health_file=tmp_path / "beat.hb", health_max_age=10)


@pytest.mark.parametrize(
    ("state", "liveness", "healthy"),
    [
        (SCHEDULING, False, True), (SCHEDULING, True, True),
        (STARTING, False, False), (STARTING, True, True),
        (BROKER_UNAVAILABLE, False, False), (BROKER_UNAVAILABLE, True, True),
        (STOPPED, True, False), (CONSUMING, True, False),
    ],
)
def test_probe_judges_the_state(tmp_path: Path, state: str, liveness: bool, healthy: bool) -> None:
    settings = probe_settings(tmp_path)
    write_heartbeat(settings.beat_health_file, state, detail="1 entry")
    result = check_beat(settings, liveness=liveness)
    assert result.healthy is healthy, result.reason
    if state == SCHEDULING:
        assert result.reason.startswith(f"beat {os.getpid()} scheduling 1 entry, heartbeat ")
    elif not healthy:
        assert result.reason == f"beat {os.getpid()} is {state}: 1 entry"


def test_probe_fails_on_a_stale_heartbeat(tmp_path: Path) -> None:
    settings = probe_settings(tmp_path)
    write_heartbeat(settings.beat_health_file, SCHEDULING)
    result = check_beat(settings, liveness=True, now=time.time() + 11)
    assert not result.healthy
    assert result.reason == "heartbeat is 11s old (max 10s): beat dead or wedged"


def test_probe_fails_without_a_heartbeat(tmp_path: Path) -> None:
    result = check_beat(probe_settings(tmp_path), liveness=True)
    assert (result.healthy, result.reason) == (
        False, f"no heartbeat file {tmp_path / 'beat.hb'} (beat not started yet?)"
    )


def test_probe_fails_when_the_writer_is_gone(tmp_path: Path) -> None:
    settings = probe_settings(tmp_path)
    beat = Heartbeat(SCHEDULING, pid=2**22 + 1, hostname=os.uname().nodename, time=time.time())
    settings.beat_health_file.write_text(json.dumps(beat.__dict__))
    result = check_beat(settings, liveness=True)
    assert not result.healthy
    assert result.reason == f"beat process {2**22 + 1} is gone (last state scheduling)"


def test_unwritable_state_directory_stops_beat_with_exit_code_2(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    clean_env.setenv("BEAT_SCHEDULE_FILE", str(blocker / "schedule"))
    clean_env.setenv("BEAT_HEALTH_FILE", str(tmp_path / "beat.hb"))
    result = CliRunner().invoke(main, ["beat"])
    assert result.exit_code == 2
    assert result.output == (
        f"taskqueue: invalid configuration: BEAT_SCHEDULE_FILE: cannot write in {blocker}: File exists\n"
    )
    assert not (tmp_path / "beat.hb").exists(), "stopped before it started"
