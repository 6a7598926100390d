"""Cheap health checks for Kubernetes probes: ``taskqueue health worker|producer|beat|flower``.

The worker check reads the heartbeat file the worker's bootstep refreshes from its event loop (see
``taskqueue.worker``): no broker round-trip, no broadcast, no subprocess, no Celery import, and it works
with remote control disabled. It fails, with a one-line reason, when the file is missing, stale (worker
dead or event loop wedged), written by a process that is gone, or says the worker is not consuming (broker
connection lost, or connected without consuming its queue: the "zombie").

The producer check reads the heartbeat file the producer refreshes from its main loop (``taskqueue.producer``:
after each publish, while it waits between dispatches and while it backs off). Missing, stale (the loop is
wedged, e.g. stuck in a publish), a gone PID or ``stopped``: unhealthy. A producer whose publishes fail
(``broker-unavailable``) or that RabbitMQ blocks during a resource alarm (``broker-blocked``) is *alive
but not ready*: ``--liveness`` passes it, the default (readiness) does
not. Restarting it during a broker outage would fix nothing, yet "not ready" keeps the outage visible
(READY 0/1, ``helm --wait``, rollouts wait instead of declaring a producer that cannot publish good).

The beat check reads the heartbeat file celery beat refreshes from its scheduler loop (``taskqueue.beat``:
at least every ``HEALTH_INTERVAL``, also while it waits for the broker). Missing, stale (the loop is
wedged), a gone PID or ``stopped``: unhealthy, without any broker round trip. ``broker-unavailable``
(cannot connect, or its last send failed) is alive but not ready, as for the producer.

The checks take :class:`~taskqueue.config.ProbeSettings` (standard library only, like this module and
``taskqueue.heartbeat``): a probe's whole import path stays free of pydantic, Celery, kombu and requests.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from taskqueue.config import ProbeSettings
from taskqueue.heartbeat import (
    BROKER_BLOCKED,
    BROKER_UNAVAILABLE,
    CONSUMING,
    DRAINING,
    PUBLISHING,
    SCHEDULING,
    STARTING,
    Heartbeat,
    HeartbeatError,
    process_alive,
    read_heartbeat,
)

if TYPE_CHECKING:
    from collections.abc import Callable

#: Seconds the Flower probe waits for an answer (a probe must answer within its own timeout).
FLOWER_TIMEOUT = 3.0


@dataclass(frozen=True)
class HealthResult:
    """Outcome of one check: ``report()`` prints one line and returns the exit code."""

    component: str
    healthy: bool
    reason: str

    def report(self) -> int:
        line = f"{self.component}: {'ok' if self.healthy else 'unhealthy'}: {self.reason}"
        print(line, file=sys.stdout if self.healthy else sys.stderr)
        return 0 if self.healthy else 1


def _live_heartbeat(
    component: str, path: Path, max_age: float, now: float | None
) -> tuple[Heartbeat, float] | HealthResult:
    """(heartbeat, age) when ``path`` holds a fresh heartbeat of a live process; else the failed result.
    The checks shared by every heartbeat: whether its state is healthy is the caller's judgement."""
    now = time.time() if now is None else now
    try:
        beat = read_heartbeat(path)
    except HeartbeatError as exc:
        return HealthResult(component, False, str(exc))
    except OSError as exc:
        return HealthResult(component, False, f"cannot read {path}: {exc.strerror}")
    if beat is None:
        return HealthResult(component, False, f"no heartbeat file {path} ({component} not started yet?)")
    # The PID means something only on the host (pod) that wrote it.
    if beat.hostname == os.uname().nodename and not process_alive(beat.pid):
        return HealthResult(
            component, False, f"{component} process {beat.pid} is gone (last state {beat.state})"
        )
    age = now - beat.time
    if age > max_age:
        return HealthResult(
            component, False, f"heartbeat is {age:.0f}s old (max {max_age:g}s): {component} dead or wedged"
        )
    return beat, age


def _state_reason(component: str, beat: Heartbeat) -> str:
    detail = f": {beat.detail}" if beat.detail else ""
    return f"{component} {beat.pid} is {beat.state}{detail}"


def check_worker(settings: ProbeSettings, *, now: float | None = None) -> HealthResult:
    """Judge the worker's heartbeat file (``WORKER_HEALTH_FILE``) against ``HEALTH_MAX_AGE``."""
    found = _live_heartbeat("worker", settings.worker_health_file, settings.health_max_age, now)
    if isinstance(found, HealthResult):
        return found
    beat, age = found
    if beat.state == DRAINING:
        # Stopping on purpose and still working: a failing liveness probe would kill the tasks it finishes.
        return HealthResult("worker", True, _state_reason("worker", beat))
    if beat.state != CONSUMING:
        return HealthResult("worker", False, _state_reason("worker", beat))
    queues = ",".join(beat.queues) or "?"
    return HealthResult("worker", True, f"worker {beat.pid} consuming {queues}, heartbeat {age:.1f}s old")


def _check_loop_heartbeat(
    component: str, path: Path, max_age: float, now: float | None, *, liveness: bool,
    live_states: frozenset[str], ready_states: frozenset[str], at_work: Callable[[Heartbeat], str],
) -> HealthResult:
    """Judge the heartbeat of a process that refreshes it from its main loop (the producer, celery beat):
    healthy in a ready state, or with ``liveness`` in a live one; the reason says what it does
    (``at_work``) when ready, and that it is only alive otherwise."""
    found = _live_heartbeat(component, path, max_age, now)
    if isinstance(found, HealthResult):
        return found
    beat, age = found
    if beat.state not in (live_states if liveness else ready_states):
        return HealthResult(component, False, _state_reason(component, beat))
    if beat.state in ready_states:
        doing = at_work(beat)
    else:  # alive, not ready: say so even when the liveness probe passes
        doing = f"alive, {beat.state}" + (f" ({beat.detail})" if beat.detail else "")
    return HealthResult(component, True, f"{component} {beat.pid} {doing}, heartbeat {age:.1f}s old")


#: Producer states each probe passes. Alive: the main loop turns (fresh heartbeat), whatever the broker
#: does. Ready: besides, its last publish was confirmed.
PRODUCER_LIVE_STATES = frozenset({STARTING, PUBLISHING, BROKER_UNAVAILABLE, BROKER_BLOCKED})
PRODUCER_READY_STATES = frozenset({PUBLISHING})


def check_producer(
    settings: ProbeSettings, *, liveness: bool = False, now: float | None = None
) -> HealthResult:
    """Judge the producer's heartbeat file (``PRODUCER_HEALTH_FILE``) against ``HEALTH_MAX_AGE``: ready
    only while publishing; with ``liveness``, also alive while starting or waiting for the broker."""
    return _check_loop_heartbeat(
        "producer", settings.producer_health_file, settings.health_max_age, now, liveness=liveness,
        live_states=PRODUCER_LIVE_STATES, ready_states=PRODUCER_READY_STATES,
        at_work=lambda beat: f"publishing to {','.join(beat.queues) or '?'}",
    )


#: celery beat states each probe passes, as for the producer: alive while its loop turns, ready once
#: connected with its last send (if any) accepted.
BEAT_LIVE_STATES = frozenset({STARTING, SCHEDULING, BROKER_UNAVAILABLE})
BEAT_READY_STATES = frozenset({SCHEDULING})


def check_beat(settings: ProbeSettings, *, liveness: bool = False, now: float | None = None) -> HealthResult:
    """Judge celery beat's heartbeat file (``BEAT_HEALTH_FILE``) against ``HEALTH_MAX_AGE``: ready only
    while scheduling; with ``liveness``, also alive while starting or waiting for the broker."""
    return _check_loop_heartbeat(
        "beat", settings.beat_health_file, settings.health_max_age, now, liveness=liveness,
        live_states=BEAT_LIVE_STATES, ready_states=BEAT_READY_STATES,
        at_work=lambda beat: "scheduling" + (f" {beat.detail}" if beat.detail else ""),
    )


def flower_healthcheck_url(settings: ProbeSettings) -> str:
    """Flower 2.x's ``/healthcheck`` on loopback, under the url prefix when one is set."""
    prefix = f"/{settings.flower_url_prefix}" if settings.flower_url_prefix else ""
    return f"http://127.0.0.1:{settings.flower_port}{prefix}/healthcheck"


def check_flower(settings: ProbeSettings) -> HealthResult:
    """GET Flower's healthcheck; any answer but ``200 OK`` is unhealthy.

    urllib rather than requests: importing requests costs ~60 ms of CPU more, on every probe. Imported
    here, not at the top: the worker probe needs none of it (~25 ms).
    """
    import base64
    import http.client
    import urllib.error
    import urllib.request

    url = flower_healthcheck_url(settings)
    request = urllib.request.Request(url)
    if settings.flower_auth:
        # Any configured user will do; the URL carries no credentials, so messages naming it are safe.
        user_password = settings.flower_auth.split(",")[0]
        token = base64.b64encode(user_password.encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    # No proxy for a loopback URL, whatever http_proxy says in the pod.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=FLOWER_TIMEOUT) as response:
            status, body = response.status, response.read(64)
    except urllib.error.HTTPError as exc:  # 4xx/5xx
        exc.close()
        return HealthResult("flower", False, f"{url} answered HTTP {exc.code}")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        name = cause.__class__.__name__ if isinstance(cause, BaseException) else str(cause)
        return HealthResult("flower", False, f"{url} does not answer: {name}")
    if status != 200:
        return HealthResult("flower", False, f"{url} answered HTTP {status}")
    text = body.decode("utf-8", "replace").strip()
    return HealthResult("flower", True, f"{url} answered {text[:20]!r}")
