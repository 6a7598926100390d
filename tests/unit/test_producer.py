"""Producer: option validation (click), pace, backoff, heartbeat; nothing here talks to a broker."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from taskqueue.cli import main
from taskqueue.config import ProbeSettings, Settings
from taskqueue.heartbeat import BROKER_UNAVAILABLE, PUBLISHING, STARTING, read_heartbeat
from taskqueue.producer import (
    PUBLISH_CONFIRM_TIMEOUT,
    PUBLISH_RETRY_POLICY,
    Backoff,
    ProducerHeartbeat,
    Summary,
    _timed_out,
    interval_from,
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "0"], "Invalid value for '--rate': 0.0 is not in the range 0<x<=100000."),
        (["--rate", "-3"], "Invalid value for '--rate'"),
        (["--rate", "fast"], "Invalid value for '--rate': 'fast' is not a valid float"),
        (["--rate", "1e9"], "Invalid value for '--rate'"),
        (["--interval", "0"], "Invalid value for '--interval': 0.0 is not in the range x>0."),
        (["--interval", "five"], "Invalid value for '--interval'"),
        (["--count", "0"], "Invalid value for '--count': 0 is not in the range x>=1."),
        (["--count", "2.5"], "Invalid value for '--count'"),
        (["--rate", "2", "--interval", "1"], "--interval and --rate are mutually exclusive"),
    ],
)
def test_bad_options_give_a_click_error(clean_env: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["produce", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_documents_the_options() -> None:
    output = CliRunner().invoke(main, ["produce", "--help"]).output
    for option in ("--interval", "--rate", "--count"):
        assert option in output


@pytest.mark.parametrize(
    ("interval", "rate", "expected"),
    [(None, None, 5.0), (2.0, None, 2.0), (None, 4.0, 0.25), (None, 1000.0, 0.001)],
)
def test_interval_from(interval: float | None, rate: float | None, expected: float) -> None:
    assert interval_from(interval, rate, 5.0) == pytest.approx(expected)


@pytest.mark.parametrize(("interval", "rate"), [(1.0, 1.0), (0.0, None), (None, 0.0), (None, -1.0)])
def test_interval_from_rejects(interval: float | None, rate: float | None) -> None:
    with pytest.raises(ValueError):
        interval_from(interval, rate, 5.0)


def test_backoff_grows_exponentially_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial=1, factor=2, cap=10)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    backoff.reset()
    assert backoff.next_delay() == 1


def test_backoff_default_is_bounded() -> None:
    backoff = Backoff()
    delays = [backoff.next_delay() for _ in range(50)]
    assert max(delays) == 30
    assert delays[:3] == [1, 2, 4]


@pytest.mark.parametrize(("initial", "factor", "cap"), [(0, 2, 10), (5, 2, 1), (1, 0.5, 10)])
def test_backoff_rejects_nonsense(initial: float, factor: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial=initial, factor=factor, cap=cap)


def test_publish_retry_budget_is_bounded() -> None:
    # Worst case of kombu's retry loop: a few seconds, not "for ever" (then the task is counted failed).
    budget = sum(
        min(PUBLISH_RETRY_POLICY["interval_start"] + i * PUBLISH_RETRY_POLICY["interval_step"],
            PUBLISH_RETRY_POLICY["interval_max"])
        for i in range(int(PUBLISH_RETRY_POLICY["max_retries"]))
    )
    assert budget <= 10


def test_a_blocked_publish_refreshes_the_heartbeat_within_the_default_max_age() -> None:
    # Between two heartbeat refreshes a publish waits at most: a connect, a confirm, a retry interval. A
    # broker that blocks publishing must not make the liveness probe restart a producer it only holds back.
    longest_gap = (
        Settings.model_fields["broker_connection_timeout"].default
        + PUBLISH_CONFIRM_TIMEOUT
        + PUBLISH_RETRY_POLICY["interval_max"]
    )
    assert longest_gap < ProbeSettings().health_max_age / 2


def test_timed_out_sees_through_kombus_wrapping() -> None:
    from kombu.exceptions import OperationalError

    try:
        try:
            raise TimeoutError("timed out")
        except TimeoutError as exc:
            raise OperationalError("timed out") from exc
    except OperationalError as wrapped:
        assert _timed_out(wrapped)
    assert not _timed_out(OperationalError(ConnectionRefusedError(111, "Connection refused")))
    assert not _timed_out(ConnectionRefusedError(111, "Connection refused"))


def test_summary_line() -> None:
    assert Summary(sent=3, failed=1).line("SIGTERM") == "producer stopped (SIGTERM): sent 3, failed 1"


# --- The heartbeat the main loop refreshes (taskqueue health producer reads it) -------------------------


def _beat_time(path: Path) -> float:
    beat = read_heartbeat(path)
    assert beat is not None
    return beat.time


def test_heartbeat_writes_on_each_change_of_state_but_throttles_a_steady_one(tmp_path: Path) -> None:
    path = tmp_path / "producer.hb"
    heartbeat = ProducerHeartbeat(path, interval=60, queues=["q"])
    heartbeat.update(STARTING, "no publish yet")
    first = _beat_time(path)
    heartbeat.update(PUBLISHING)
    beat = read_heartbeat(path)
    assert beat is not None and (beat.state, beat.queues, beat.pid) == (PUBLISHING, ["q"], os.getpid())
    written = _beat_time(path)
    assert written >= first
    for _ in range(100):  # a bulk run: one write per interval, not one per task
        heartbeat.update(PUBLISHING)
    assert _beat_time(path) == written
    heartbeat.update(BROKER_UNAVAILABLE, "1 publish(es) failed, backing off")
    beat = read_heartbeat(path)
    assert beat is not None
    assert (beat.state, beat.detail) == (BROKER_UNAVAILABLE, "1 publish(es) failed, backing off")


def test_wait_refreshes_the_heartbeat_every_interval(tmp_path: Path) -> None:
    # A long --interval (3600 s) must not leave the file stale: the wait refreshes it.
    path = tmp_path / "producer.hb"
    heartbeat = ProducerHeartbeat(path, interval=0.1, queues=["q"])
    heartbeat.update(PUBLISHING)
    written = _beat_time(path)
    stop = threading.Event()
    started = time.monotonic()
    assert heartbeat.wait(stop, 0.55) is False
    assert 0.5 <= time.monotonic() - started < 5
    assert _beat_time(path) - written >= 0.35  # refreshed during the wait, state kept
    assert read_heartbeat(path).state == PUBLISHING  # type: ignore[union-attr]


def test_wait_returns_at_once_when_stopped(tmp_path: Path) -> None:
    heartbeat = ProducerHeartbeat(tmp_path / "producer.hb", interval=0.1, queues=["q"])
    heartbeat.update(PUBLISHING)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert heartbeat.wait(stop, 3600) is True
    assert time.monotonic() - started < 5
    assert heartbeat.wait(stop, 0) is True  # nothing left to wait, but stopped
    assert heartbeat.wait(threading.Event(), 0) is False


# --- PRODUCER_RATE / PRODUCER_COUNT (the chart's producer.rate / producer.count) -----------------------


def _producer_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    from taskqueue.config import load_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.mark.parametrize(
    ("env", "period", "count", "idle"),
    [
        ({}, 5.0, None, False),
        ({"PRODUCER_INTERVAL": "2"}, 2.0, None, False),
        ({"PRODUCER_RATE": "4"}, 0.25, None, False),
        ({"PRODUCER_RATE": "100000", "PRODUCER_COUNT": "1000000"}, 0.00001, 1_000_000, False),
        ({"PRODUCER_COUNT": "7", "PRODUCER_IDLE_AFTER_COUNT": "true"}, 5.0, 7, True),
    ],
)
def test_rate_and_count_come_from_the_environment(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], period: float, count: int | None, idle: bool
) -> None:
    settings = _producer_settings(clean_env, **env)
    assert settings.producer_period == pytest.approx(period)
    assert (settings.producer_count, settings.producer_idle_after_count) == (count, idle)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PRODUCER_RATE": "0"}, "PRODUCER_RATE: Input should be greater than 0 (got '0')"),
        ({"PRODUCER_RATE": "fast"}, "PRODUCER_RATE: Input should be a valid number"),
        ({"PRODUCER_RATE": "200000"}, "PRODUCER_RATE: Input should be less than or equal to 100000"),
        ({"PRODUCER_COUNT": "0"}, "PRODUCER_COUNT: Input should be greater than 0 (got '0')"),
        ({"PRODUCER_COUNT": "2.5"}, "PRODUCER_COUNT: Input should be a valid integer"),
        ({"PRODUCER_COUNT": "ten"}, "PRODUCER_COUNT: Input should be a valid integer"),
        ({"PRODUCER_IDLE_AFTER_COUNT": "maybe"},
         "PRODUCER_IDLE_AFTER_COUNT: Input should be a valid boolean"),
        (
            {"PRODUCER_RATE": "2", "PRODUCER_INTERVAL": "1"},
            "PRODUCER_RATE and PRODUCER_INTERVAL are mutually exclusive (PRODUCER_RATE R means "
            "PRODUCER_INTERVAL 1/R); set one",
        ),
    ],
)
def test_bad_rate_or_count_variables_are_named(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    from taskqueue.config import ConfigError

    with pytest.raises(ConfigError) as error:
        _producer_settings(clean_env, **env)
    assert message in str(error.value)


def test_bad_rate_variable_stops_produce_with_exit_2(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PRODUCER_RATE", "-1")
    result = CliRunner().invoke(main, ["produce"])
    assert result.exit_code == 2
    assert "taskqueue: invalid configuration: PRODUCER_RATE: Input should be greater than 0" in result.output


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({}, [], {"interval": 5.0, "count": None, "idle_after_count": False}),
        (
            {"PRODUCER_RATE": "4", "PRODUCER_COUNT": "9", "PRODUCER_IDLE_AFTER_COUNT": "true"},
            [],
            {"interval": 0.25, "count": 9, "idle_after_count": True},
        ),
        # Options win over the environment, --rate over PRODUCER_INTERVAL and --interval over PRODUCER_RATE.
        (
            {"PRODUCER_INTERVAL": "3", "PRODUCER_COUNT": "9"},
            ["--rate", "10", "--count", "2"],
            {"interval": 0.1, "count": 2, "idle_after_count": False},
        ),
        (
            {"PRODUCER_RATE": "10", "PRODUCER_IDLE_AFTER_COUNT": "false"},
            ["--interval", "2", "--idle-after-count"],
            {"interval": 2.0, "count": None, "idle_after_count": True},
        ),
    ],
)
def test_produce_passes_rate_and_count_from_options_or_environment(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], args: list[str], expected: dict[str, object]
) -> None:
    import taskqueue.producer

    calls: list[dict[str, object]] = []

    def fake_run_producer(settings: Settings, **kwargs: object) -> int:
        calls.append(kwargs)
        return 0

    for name, value in env.items():
        clean_env.setenv(name, value)
    clean_env.setattr(taskqueue.producer, "run_producer", fake_run_producer)
    result = CliRunner().invoke(main, ["produce", *args])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
    assert calls[0] == {**expected, "interval": pytest.approx(expected["interval"])}


def _fake_publish(sent: list[tuple[int, int]]) -> Any:
    def publish(app: Any, settings: Settings, x: int, y: int, summary: Summary, chatty: bool,
                retry_policy: Any = None) -> bool:
        summary.sent += 1
        sent.append((x, y))
        return True

    return publish


def test_count_without_idle_exits_once_sent(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import taskqueue.producer
    from taskqueue.heartbeat import STOPPED

    path = tmp_path / "producer.hb"
    settings = _producer_settings(clean_env, BROKER_URL="memory://", PRODUCER_HEALTH_FILE=str(path))
    sent: list[tuple[int, int]] = []
    clean_env.setattr(taskqueue.producer, "_publish", _fake_publish(sent))
    started = time.monotonic()
    assert taskqueue.producer.run_producer(settings, interval=0.01, count=3, seed=1) == 0
    assert time.monotonic() - started < 10
    assert len(sent) == 3
    beat = read_heartbeat(path)
    assert beat is not None and (beat.state, beat.detail) == (STOPPED, "producer exited (count reached)")


def test_idle_after_count_stays_up_with_a_fresh_heartbeat_until_stopped(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the chart runs with producer.count: the batch, then idle (ready, alive) until SIGTERM, so the
    Deployment never restarts it into a second batch."""
    import taskqueue.producer
    from taskqueue.heartbeat import STOPPED

    path = tmp_path / "producer.hb"
    settings = _producer_settings(
        clean_env, BROKER_URL="memory://", PRODUCER_HEALTH_FILE=str(path), HEALTH_INTERVAL="0.1"
    )
    sent: list[tuple[int, int]] = []
    clean_env.setattr(taskqueue.producer, "_publish", _fake_publish(sent))
    seen: dict[str, Any] = {}

    def stop_once_idle() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "idle" not in seen:
            beat = read_heartbeat(path)
            if beat is not None and beat.detail.endswith("idle"):
                seen["idle"] = beat
            time.sleep(0.02)
        time.sleep(0.5)  # several heartbeat intervals later: still up, still fresh
        seen["later"] = read_heartbeat(path)
        os.kill(os.getpid(), signal.SIGTERM)

    # run_producer installs its own SIGTERM handler and restores this one: a stray signal kills nothing.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    stopper = threading.Thread(target=stop_once_idle)
    try:
        stopper.start()
        code = taskqueue.producer.run_producer(
            settings, interval=0.01, count=3, seed=1, idle_after_count=True
        )
        stopper.join(timeout=15)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 0
    assert len(sent) == 3, "exactly the batch: nothing sent while idle"
    idle, later = seen["idle"], seen["later"]
    assert (idle.state, idle.detail) == (PUBLISHING, "count reached (sent 3, failed 0), idle")
    assert later is not None and (later.state, later.detail) == (PUBLISHING, idle.detail)
    assert later.time - idle.time >= 0.3, "the idle producer keeps its heartbeat fresh"
    final = read_heartbeat(path)
    assert final is not None and (final.state, final.detail) == (STOPPED, "producer exited (SIGTERM)")
