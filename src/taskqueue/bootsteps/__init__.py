"""The worker's own Celery bootsteps, one per module; each reads its settings from the app it runs in
(``taskqueue.app.settings_of``: ``create_app`` attaches them), so a step is a plain class Celery builds.

- ``heartbeat``: writes the heartbeat file the health probe judges (consumer blueprint).
- ``drain``: owns SIGTERM, finishing and acknowledging the tasks in flight before shutting down (consumer).
- ``acks``: the late acks of one loop turn sent together (``taskqueue.acks``).
- ``guard``: an inline worker's timers during a long task, and its stop under a task past its hard limit.
"""

from __future__ import annotations

from celery import Celery

from taskqueue.bootsteps.acks import AckBatchStep
from taskqueue.bootsteps.drain import DrainStep
from taskqueue.bootsteps.guard import GuardStep
from taskqueue.bootsteps.heartbeat import HeartbeatStep

__all__ = ["AckBatchStep", "DrainStep", "GuardStep", "HeartbeatStep", "add_worker_steps"]


def add_worker_steps(app: Celery) -> None:
    """Register the steps on ``app``'s consumer blueprint (the worker built from it then runs them)."""
    app.steps["consumer"].add(AckBatchStep)
    app.steps["consumer"].add(HeartbeatStep)
    app.steps["consumer"].add(DrainStep)
    app.steps["consumer"].add(GuardStep)
