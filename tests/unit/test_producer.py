"""Producer: option validation (click), pace, backoff, heartbeat; nothing here talks to a broker."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskqueue.cli import main
from taskqueue.config import DEFAULT_HEALTH_MAX_AGE, Settings
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
    assert longest_gap < DEFAULT_HEALTH_MAX_AGE / 2


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
