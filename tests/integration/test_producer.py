"""``taskqueue produce`` against the real broker: its tasks are executed; SIGTERM stops it with a summary."""

from __future__ import annotations

import re
import signal
import time

import pytest

from taskqueue.private_broker import PrivateBroker
from tests.support.processes import Processes
from tests.support.waiting import wait_until
from tests.support.workers import health_producer, start_worker, wait_ready

pytestmark = pytest.mark.integration

SUCCEEDED = re.compile(r"Task taskqueue\.tasks\.add\[([0-9a-f-]{36})\] succeeded")
SENT = re.compile(r"sent add\((\d+), (\d+)\) id ([0-9a-f-]{36})")


def test_produced_tasks_are_executed(processes: Processes, worker_env: dict[str, str]) -> None:
    worker = start_worker(processes, worker_env)
    # LOG_LEVEL=debug: a bulk run logs each task id at debug level.
    producer = processes.taskqueue(
        "produce", "--count", "25", "--rate", "50", env={**worker_env, "LOG_LEVEL": "debug"}
    )
    assert producer.wait(timeout=60) == 0
    output = processes.output(producer)
    assert "producer stopped (count reached): sent 25, failed 0" in output
    sent = {match[2] for match in SENT.findall(output)}
    assert len(sent) == 25
    assert all(0 <= int(x) <= 100 and 0 <= int(y) <= 100 for x, y, _ in SENT.findall(output))
    wait_until(
        lambda: set(SUCCEEDED.findall(processes.output(worker))) >= sent,
        timeout=60,
        what="the worker to execute all 25 produced tasks",
    )
    assert "guest:guest" not in output


def test_sigterm_stops_the_producer_with_a_summary(processes: Processes, worker_env: dict[str, str]) -> None:
    start_worker(processes, worker_env)
    producer = processes.taskqueue("produce", "--interval", "0.2", env=worker_env)
    wait_until(lambda: processes.output(producer).count("sent add(") >= 3, timeout=30, what="3 tasks sent")
    assert processes.stop(producer, sig=signal.SIGTERM) == 0
    summary = re.search(r"producer stopped \(SIGTERM\): sent (\d+), failed 0", processes.output(producer))
    assert summary is not None, processes.output(producer)
    assert int(summary[1]) == processes.output(producer).count("sent add(")


def test_default_interval_is_the_originals_five_seconds(
    processes: Processes, worker_env: dict[str, str]
) -> None:
    producer = processes.taskqueue("produce", env=worker_env)
    wait_until(lambda: "sent add(" in processes.output(producer), timeout=30, what="first task sent")
    assert "every 5s" in processes.output(producer)
    assert processes.stop(producer, sig=signal.SIGINT) == 0
    assert "producer stopped (SIGINT): sent 1, failed 0" in processes.output(producer)


def test_producer_rides_out_a_broker_outage(
    processes: Processes, worker_env: dict[str, str], private_broker: PrivateBroker
) -> None:
    """Broker down: publishes fail after their retry budget and are reported, the producer backs off but
    keeps running; broker back: it sends again. Nothing it reported as sent is lost. (A failed one may still
    run: the broker may have taken a message it could not confirm before it stopped. At-least-once.)"""
    env = {**worker_env, "BROKER_URL": private_broker.url}
    producer = processes.taskqueue("produce", "--interval", "0.2", env=env)
    wait_until(lambda: processes.output(producer).count("sent add(") >= 3, timeout=30, what="3 tasks sent")

    private_broker.stop()
    wait_until(
        lambda: "could not publish add(" in processes.output(producer), timeout=60, what="failure report"
    )
    assert producer.poll() is None, "the producer must survive the outage"
    assert "broker unavailable: next attempt in" in processes.output(producer)
    sent_during_outage = processes.output(producer).count("sent add(")

    private_broker.start()
    wait_until(
        lambda: processes.output(producer).count("sent add(") >= sent_during_outage + 3,
        timeout=120,
        interval=0.5,
        what="the producer to send again after the broker came back",
    )
    assert processes.stop(producer, sig=signal.SIGTERM) == 0
    output = processes.output(producer)
    summary = re.search(r"producer stopped \(SIGTERM\): sent (\d+), failed (\d+)", output)
    assert summary is not None, output
    sent_ids = {match[2] for match in SENT.findall(output)}
    failed = re.findall(r"could not publish add\(\d+, \d+\) id ([0-9a-f-]{36})", output)
    assert int(summary[1]) == len(sent_ids) and int(summary[2]) == len(failed) >= 1
    assert "guest:guest" not in output

    # Every task confirmed as sent (before and after the restart: durable queue, persistent messages) runs.
    worker = start_worker(processes, env)
    wait_until(
        lambda: set(SUCCEEDED.findall(processes.output(worker))) >= sent_ids,
        timeout=60,
        what="every sent task to be executed",
    )


# --- `taskqueue health producer` against a running producer ---------------------------------------------

#: A quick heartbeat, so that staleness shows within seconds.
PRODUCER_HEALTH = {"HEALTH_INTERVAL": "0.3", "HEALTH_MAX_AGE": "2"}


def test_health_producer_passes_while_it_waits_and_fails_once_killed(
    processes: Processes, worker_env: dict[str, str]
) -> None:
    env = {**worker_env, **PRODUCER_HEALTH}
    producer = processes.taskqueue("produce", "--interval", "3600", env=env)
    wait_ready(processes, producer, env)
    # Several max ages later it has published once and only waited since: the wait refreshed the heartbeat.
    time.sleep(3 * float(PRODUCER_HEALTH["HEALTH_MAX_AGE"]))
    assert processes.output(producer).count("sent add(") == 1
    for flags in ((), ("--liveness",)):
        result = health_producer(env, *flags)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"producer: ok: producer {producer.pid} publishing to ")

    processes.stop(producer, sig=signal.SIGKILL)  # no chance to mark itself stopped
    for flags in ((), ("--liveness",)):
        result = health_producer(env, *flags)
        assert result.returncode == 1
        assert result.stderr == (
            f"producer: unhealthy: producer process {producer.pid} is gone (last state publishing)\n"
        )


def test_health_producer_after_a_clean_stop(processes: Processes, worker_env: dict[str, str]) -> None:
    env = {**worker_env, **PRODUCER_HEALTH}
    producer = processes.taskqueue("produce", "--interval", "3600", env=env)
    wait_ready(processes, producer, env)
    assert processes.stop(producer, sig=signal.SIGTERM) == 0
    result = health_producer(env, "--liveness")
    assert result.returncode == 1
    assert "(last state stopped)" in result.stderr


def test_health_producer_during_a_broker_outage(
    processes: Processes, worker_env: dict[str, str], private_broker: PrivateBroker
) -> None:
    """Broker down: the producer is alive (liveness passes, for longer than the max age: the backoff
    refreshes the heartbeat) but not ready (it cannot publish). Broker back: ready again."""
    env = {**worker_env, **PRODUCER_HEALTH, "BROKER_URL": private_broker.url}
    producer = processes.taskqueue("produce", "--interval", "0.5", env=env)
    wait_ready(processes, producer, env)

    private_broker.stop()
    not_ready = wait_until(
        lambda: r if (r := health_producer(env)).returncode == 1 else None,
        timeout=60,
        what="readiness to fail",
    )
    assert f"producer: unhealthy: producer {producer.pid} is broker-unavailable" in not_ready.stderr
    deadline = time.monotonic() + 3 * float(PRODUCER_HEALTH["HEALTH_MAX_AGE"])
    while time.monotonic() < deadline:  # bounded: a few max ages of outage, checked every half second
        alive = health_producer(env, "--liveness")
        assert alive.returncode == 0, alive.stderr
        assert "alive, broker-unavailable" in alive.stdout
        assert health_producer(env).returncode == 1
        time.sleep(0.5)
    assert producer.poll() is None

    private_broker.start()
    wait_until(lambda: health_producer(env).returncode == 0, timeout=120, interval=0.5,
               what="the producer to be ready again after the broker came back")
    assert processes.stop(producer, sig=signal.SIGTERM) == 0


def test_batch_from_the_environment_then_idle_as_the_chart_runs_it(
    processes: Processes, worker_env: dict[str, str]
) -> None:
    """producer.rate and producer.count as the chart renders them (PRODUCER_RATE, PRODUCER_COUNT,
    PRODUCER_IDLE_AFTER_COUNT): exactly the batch reaches the worker, then the producer stays up, healthy
    and silent, until SIGTERM (a Deployment would restart an exited one into another batch)."""
    worker = start_worker(processes, worker_env)
    env = {
        **worker_env, **PRODUCER_HEALTH, "LOG_LEVEL": "debug",
        "PRODUCER_RATE": "50", "PRODUCER_COUNT": "20", "PRODUCER_IDLE_AFTER_COUNT": "true",
    }
    producer = processes.taskqueue("produce", env=env)
    wait_until(
        lambda: "count reached: sent 20, failed 0; idle until stopped" in processes.output(producer),
        timeout=60,
        what="the batch of 20 to be sent",
    )
    # Several heartbeat max ages later: still running, still alive and ready, nothing more sent.
    time.sleep(3 * float(PRODUCER_HEALTH["HEALTH_MAX_AGE"]))
    assert producer.poll() is None, processes.output(producer)
    for flags in ((), ("--liveness",)):
        result = health_producer(env, *flags)
        assert result.returncode == 0, result.stderr
    output = processes.output(producer)
    assert "every 0.02s, 20 tasks" in output
    sent = {match[2] for match in SENT.findall(output)}
    assert len(sent) == 20
    wait_until(
        lambda: set(SUCCEEDED.findall(processes.output(worker))) >= sent,
        timeout=60,
        what="the worker to execute the batch",
    )
    assert processes.stop(producer, sig=signal.SIGTERM) == 0
    assert "producer stopped (SIGTERM): sent 20, failed 0" in processes.output(producer)
    assert len(SENT.findall(processes.output(producer))) == 20
