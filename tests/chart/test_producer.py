"""The producer Deployment (`taskqueue produce`), the original's run_tasks.py."""

from __future__ import annotations

import pytest

from taskqueue.settings_registry import BY_ENV
from tests.chart.rendering import Manifest, RenderErrorFn, RenderFn, chart_values, env_of, env_value

PRODUCER_VALUES = chart_values()["producer"]
HEALTH_PRODUCER = ["taskqueue", "health", "producer"]


def test_producer_runs_taskqueue_produce_every_five_seconds(default_manifest: Manifest) -> None:
    container = default_manifest.container("producer")
    assert default_manifest.workload("producer")["kind"] == "Deployment"
    assert container.get("args") == ["produce"]
    assert PRODUCER_VALUES["interval"] == 5, "the original dispatches add() every 5 s"
    assert env_value(container, "PRODUCER_INTERVAL") == "5"


def test_producer_interval_override(render: RenderFn) -> None:
    assert (
        env_value(render({"producer": {"interval": 0.5}}).container("producer"), "PRODUCER_INTERVAL") == "0.5"
    )


@pytest.mark.parametrize("replicas", [0, 1, 3])
def test_producer_replica_override_honoured(render: RenderFn, replicas: int) -> None:
    assert (
        render({"producer": {"replicaCount": replicas}}).workload("producer")["spec"]["replicas"] == replicas
    )


def test_producer_can_be_disabled(render: RenderFn) -> None:
    manifest = render({"producer": {"enabled": False}})
    assert not manifest.find(component="producer")
    assert manifest.workload("worker"), "disabling the producer must leave the worker"


def test_producer_routes_to_the_worker_queue(render: RenderFn) -> None:
    manifest = render({"celery": {"queueName": "arith"}})
    assert env_value(manifest.container("producer"), "QUEUE_NAME") == "arith"
    assert env_value(manifest.container("worker"), "QUEUE_NAME") == "arith"


def test_probes_call_taskqueue_health_producer(default_manifest: Manifest) -> None:
    # Liveness passes a producer waiting for the broker (restarting it would not help); readiness doesn't.
    container = default_manifest.container("producer")
    assert container["livenessProbe"]["exec"]["command"] == [*HEALTH_PRODUCER, "--liveness"]
    assert container["readinessProbe"]["exec"]["command"] == HEALTH_PRODUCER
    assert "startupProbe" not in container, "the first heartbeat is written at start: no startup probe needed"


def test_producer_heartbeat_is_on_the_writable_tmp(default_manifest: Manifest) -> None:
    container = default_manifest.container("producer")
    # The file is the package's default, which the producer writes and the probe reads.
    assert "PRODUCER_HEALTH_FILE" not in env_of(container)
    assert str(BY_ENV["PRODUCER_HEALTH_FILE"].default).startswith("/tmp/")
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    interval, max_age = (float(env_value(container, n)) for n in ("HEALTH_INTERVAL", "HEALTH_MAX_AGE"))
    assert (interval, max_age) == (PRODUCER_VALUES["health"]["interval"], PRODUCER_VALUES["health"]["maxAge"])
    assert max_age > interval


def test_producer_probe_values_honoured(render: RenderFn) -> None:
    manifest = render(
        {
            "producer": {
                "health": {"interval": 2, "maxAge": 20},
                "livenessProbe": {"periodSeconds": 7, "failureThreshold": 5},
                "readinessProbe": {"enabled": False},
            }
        }
    )
    container = manifest.container("producer")
    liveness = container["livenessProbe"]
    assert (liveness["periodSeconds"], liveness["failureThreshold"]) == (7, 5)
    assert "readinessProbe" not in container
    assert (env_value(container, "HEALTH_INTERVAL"), env_value(container, "HEALTH_MAX_AGE")) == ("2", "20")


def test_rate_and_count_are_unset_by_default(default_manifest: Manifest) -> None:
    env = {entry["name"] for entry in default_manifest.container("producer")["env"]}
    assert (PRODUCER_VALUES["rate"], PRODUCER_VALUES["count"]) == (None, None)
    assert not env & {"PRODUCER_RATE", "PRODUCER_COUNT", "PRODUCER_IDLE_AFTER_COUNT"}


def test_producer_rate_replaces_the_interval(render: RenderFn) -> None:
    # The producer refuses PRODUCER_RATE and PRODUCER_INTERVAL together: only one is rendered.
    container = render({"producer": {"rate": 0.25, "interval": 3}}).container("producer")
    assert env_value(container, "PRODUCER_RATE") == "0.25"
    assert "PRODUCER_INTERVAL" not in {entry["name"] for entry in container["env"]}
    assert container["args"] == ["produce"], "configured by the environment, like every other setting"


@pytest.mark.parametrize(("count", "rendered"), [(1, "1"), (1000, "1000"), (25_000_000, "25000000")])
def test_producer_count_sends_a_batch_then_idles(render: RenderFn, count: int, rendered: str) -> None:
    container = render({"producer": {"count": count}}).container("producer")
    assert env_value(container, "PRODUCER_COUNT") == rendered
    # An exited container of a Deployment is restarted: it would send one batch after another.
    assert env_value(container, "PRODUCER_IDLE_AFTER_COUNT") == "true"
    assert env_value(container, "PRODUCER_INTERVAL") == "5"


@pytest.mark.parametrize(
    ("producer", "message"),
    [
        ({"rate": 0}, "at '/producer/rate': exclusiveMinimum: got 0, want 0"),
        ({"rate": -1}, "at '/producer/rate'"),
        ({"rate": 200000}, "at '/producer/rate': maximum: got 200,000, want 100,000"),
        ({"rate": "fast"}, "at '/producer/rate': got string, want null or number"),
        ({"count": 0}, "at '/producer/count': minimum: got 0, want 1"),
        ({"count": 1.5}, "at '/producer/count': got number, want null or integer"),
        ({"count": "10"}, "at '/producer/count': got string, want null or integer"),
    ],
)
def test_schema_refuses_bad_rate_or_count(
    render_error: RenderErrorFn, producer: dict[str, object], message: str
) -> None:
    assert message in render_error({"producer": producer})
