"""The environment of ``taskqueue`` subprocesses of tests and benchmarks: nothing of the runtime's
configuration leaks in from the developer's shell, files go to a directory of the run's own."""

from __future__ import annotations

import os
from pathlib import Path

from taskqueue.settings_registry import SETTINGS
from tests.support.processes import VENV_BIN

#: Variables of the runtime's configuration that must not leak from the developer's shell into a test: all
#: the runtime reads, as the settings registry declares them (former names too, still read for a release).
RUNTIME_VARIABLES = frozenset(name for setting in SETTINGS for name in (setting.env, *setting.former))


def runtime_environment(broker_url: str, queue_name: str, directory: Path) -> dict[str, str]:
    """Environment for a ``taskqueue`` subprocess: the broker, the queue, files in ``directory``."""
    env = {key: value for key, value in os.environ.items() if key not in RUNTIME_VARIABLES}
    env.update(
        BROKER_URL=broker_url,
        QUEUE_NAME=queue_name,
        WORKER_HEALTH_FILE=str(directory / "worker.heartbeat"),
        PRODUCER_HEALTH_FILE=str(directory / "producer.heartbeat"),
        BEAT_HEALTH_FILE=str(directory / "beat.heartbeat"),
        BEAT_SCHEDULE_FILE=str(directory / "beat-state" / "schedule"),
        FLOWER_DB=str(directory / "flower.db"),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    return env


#: Heartbeat cadence of test workers: quick, so health transitions show within a few seconds.
TEST_HEALTH_INTERVAL = "0.5"
TEST_HEALTH_MAX_AGE = "5"


def with_fast_heartbeat(env: dict[str, str]) -> dict[str, str]:
    """``env`` plus a fast heartbeat, for ``taskqueue worker`` subprocesses; and the per-task log lines
    (``received``, ``succeeded``: off by default), by which these tests follow single tasks."""
    return {**env, "HEALTH_INTERVAL": TEST_HEALTH_INTERVAL, "HEALTH_MAX_AGE": TEST_HEALTH_MAX_AGE,
            "WORKER_LOG_TASKS": "true"}
