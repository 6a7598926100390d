"""The worker's bootsteps are plain classes that read their settings from the app they run in."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from celery import Celery

from taskqueue.app import create_app, settings_of
from taskqueue.bootsteps import DrainStep, HeartbeatStep, add_worker_steps
from taskqueue.bootsteps.drain import DEADLINE_MARGIN
from taskqueue.config import Settings


@pytest.fixture
def settings(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    return Settings(worker_health_file=tmp_path / "hb", task_time_limit=30, task_soft_time_limit=20,
                    worker_prefetch_multiplier=3)


def test_create_app_attaches_its_settings(settings: Settings) -> None:
    assert settings_of(create_app(settings, set_as_current=False)) is settings


def test_an_app_not_built_by_create_app_has_no_settings() -> None:
    with pytest.raises(LookupError) as caught:
        settings_of(Celery("other", set_as_current=False))
    assert str(caught.value) == "app 'other' carries no settings: build it with taskqueue.app.create_app"


def test_worker_steps_are_registered_on_the_consumer_blueprint(settings: Settings) -> None:
    app = create_app(settings, set_as_current=False)
    add_worker_steps(app)
    assert {HeartbeatStep, DrainStep} <= set(app.steps["consumer"])
    assert app.steps["worker"] == set()


def test_heartbeat_step_reads_the_app_settings(settings: Settings) -> None:
    consumer = SimpleNamespace(app=create_app(settings, set_as_current=False))
    step = HeartbeatStep(consumer)
    assert step.settings is settings
    step._write("starting", "test")  # the writer goes to the app's WORKER_HEALTH_FILE
    assert settings.worker_health_file.exists()


def test_drain_deadline_comes_from_the_app_settings(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = SimpleNamespace(app=create_app(settings, set_as_current=False), task_consumer=None)
    step = DrainStep(consumer)
    monkeypatch.setattr("taskqueue.bootsteps.drain.time.monotonic", lambda: 1000.0)
    step._begin(consumer)
    # The held tasks may take prefetch * hard limit each, plus the margin: 3 * 30 + 10.
    assert step.deadline == 1000.0 + 90 + DEADLINE_MARGIN
