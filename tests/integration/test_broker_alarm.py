"""A RabbitMQ resource alarm (low disk or memory) blocks publishing: every component says so and rides it
out. Each test raises a disk alarm on a private node with ``rabbitmqctl set_disk_free_limit``."""

from __future__ import annotations

import re
import signal
import time

import pytest

from taskqueue.private_broker import PrivateBroker
from taskqueue.producer import PUBLISH_CONFIRM_TIMEOUT
from tests.support.brokers import broker_problem
from tests.support.processes import Processes
from tests.support.waiting import wait_until
from tests.support.workers import health_of, health_producer, start_worker, wait_ready

pytestmark = pytest.mark.integration

#: More than any disk has: the disk alarm goes off at once.
ALARM = "1000000GB"
#: RabbitMQ's default limit: the alarm clears.
NO_ALARM = "50MB"


def test_producer_reports_a_broker_resource_alarm_and_resumes(
    processes: Processes, worker_env: dict[str, str], private_broker: PrivateBroker
) -> None:
    """A disk alarm makes RabbitMQ block publishing: the producer says so (log, readiness), stays alive (its
    publishes time out instead of hanging, so the heartbeat stays fresh) and publishes again after it."""
    env = {**worker_env, "HEALTH_INTERVAL": "0.3", "HEALTH_MAX_AGE": "15", "BROKER_URL": private_broker.url}
    producer = processes.taskqueue("produce", "--interval", "0.3", env=env)
    wait_ready(processes, producer, env)

    private_broker.ctl("set_disk_free_limit", ALARM)
    blocked = wait_until(
        lambda: r if (r := health_producer(env)).returncode == 1 else None,
        timeout=30,
        what="readiness to fail",
        detail=lambda: processes.tail(producer),
    )
    assert f"producer: unhealthy: producer {producer.pid} is broker-blocked: RabbitMQ blocks publishing" in (
        blocked.stderr
    )
    assert "RabbitMQ blocked publishing on this connection" in processes.output(producer)
    # Alive all along, for longer than a confirm timeout plus a retry: liveness must not restart it.
    deadline = time.monotonic() + 2 * PUBLISH_CONFIRM_TIMEOUT + 2
    while time.monotonic() < deadline:  # bounded: about 12 s, checked every half second
        alive = health_producer(env, "--liveness")
        assert alive.returncode == 0, alive.stderr
        time.sleep(0.5)
    sent_while_blocked = processes.output(producer).count("sent add(")

    private_broker.ctl("set_disk_free_limit", NO_ALARM)
    wait_ready(processes, producer, env)
    wait_until(
        lambda: processes.output(producer).count("sent add(") >= sent_while_blocked + 3,
        timeout=30,
        what="the producer to send again after the alarm",
    )
    assert "publishing again: the broker takes messages" in processes.output(producer)

    # Stopped during an alarm, it exits cleanly within Kubernetes' default 30 s grace period, though the
    # broker answers no close handshake.
    private_broker.ctl("set_disk_free_limit", ALARM)
    wait_until(lambda: health_producer(env).returncode == 1, timeout=30, what="readiness to fail again")
    assert processes.stop(producer, sig=signal.SIGTERM, timeout=30) == 0
    output = processes.output(producer)
    assert "not closing the broker connection gracefully: the broker blocks it" in output
    assert re.search(r"producer stopped \(SIGTERM\): sent \d+, failed \d+", output)
    # A publish that gave up while blocked timed out waiting for its confirm: reported as such, not as lost.
    for failure in re.findall(r"could not publish add.*", output):
        assert failure.endswith("(unconfirmed: the broker may still deliver it)"), failure


def test_worker_logs_the_alarm_stays_healthy_and_stops(
    processes: Processes, worker_env: dict[str, str], private_broker: PrivateBroker
) -> None:
    """The worker keeps its consumer during an alarm: healthy, and the log says why its events and results
    stall. It still stops on SIGTERM."""
    env = {**worker_env, "BROKER_URL": private_broker.url}
    worker = start_worker(processes, env)
    private_broker.ctl("set_disk_free_limit", ALARM)
    wait_until(
        lambda: "RabbitMQ blocked publishing on this connection" in processes.output(worker),
        timeout=30,
        what="the worker to log the alarm",
        detail=lambda: processes.tail(worker),
    )
    assert health_of(env).healthy
    # Stopped during the alarm, it exits cleanly within the chart's grace period (120 s): each wait for a
    # close-ok the blocked broker never sends ends after taskqueue.app.BROKER_REPLY_TIMEOUT.
    assert processes.stop(worker, sig=signal.SIGTERM, timeout=120) == 0
    assert "drained: no task in flight, shutting down" in processes.output(worker)

def test_the_test_preflight_names_a_broker_in_alarm(private_broker: PrivateBroker) -> None:
    """What CI prints when the machine's broker is in an alarm, instead of a dozen obscure timeouts."""
    assert broker_problem(private_broker.url) is None
    private_broker.ctl("set_disk_free_limit", ALARM)
    problem = broker_problem(private_broker.url)
    assert problem is not None and problem.startswith("it blocks publishing (")
    assert "a resource alarm, see `rabbitmq-diagnostics alarms`" in problem
