"""Fixtures of the container layer: a Docker engine (one that answers, else a dockerd started and stopped
here), the project image built once per session, a private RabbitMQ node with its management API, the
chart rendered with that image, and its pods run as containers (tests/container/pods.py)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from taskqueue.private_broker import PrivateBroker
from tests.container.engine import (
    Docker,
    Engine,
    EngineUnavailable,
    find_or_start_engine,
    run_setup_docker,
)
from tests.container.image import Build, build_image
from tests.container.pods import Pods
from tests.container.release import (
    Release,
    Render,
    chart_overrides,
    create_broker_user,
    render_chart,
    running_pods,
    start_ready,
)
from tests.support.brokers import private_node
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.ports import free_port


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An answering Docker engine; skipped, with the reason, only where none answers and dockerd cannot
    start (not root, not installable, or it fails here)."""
    if not shutil.which("dockerd", path=f"{os.environ.get('PATH', '')}:/usr/sbin"):
        run_setup_docker()  # installs docker.io (root with apt), otherwise says what to install
    try:
        engine = find_or_start_engine(tmp_path_factory.mktemp("dockerd"))
    except EngineUnavailable as exc:
        pytest.skip(f"no Docker engine: {exc}")
    try:
        yield engine
    finally:
        if engine.ours:
            # Superseded builds of the test image (dangling once a new build takes the tag), and build
            # cache beyond what a rebuild needs: .tools/docker/data must not grow run after run.
            engine.docker.run("image", "prune", "--force", check=False, timeout=300)
            engine.docker.run("builder", "prune", "--force", "--keep-storage", "2GB", check=False,
                              timeout=300)
        engine.stop()


@pytest.fixture(scope="session")
def docker(docker_engine: Engine) -> Docker:
    return docker_engine.docker


@pytest.fixture(scope="session")
def image(docker: Docker) -> Build:
    """The project image, built once per session from the working tree (cached layers make a rebuild of
    unchanged sources take seconds)."""
    return build_image(docker)


@pytest.fixture(scope="session")
def image_user(docker: Docker, image: Build) -> str:
    return docker.run("image", "inspect", "--format", "{{.Config.User}}", image.ref).stdout.strip()


# --- broker ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def container_broker() -> Iterator[PrivateBroker]:
    """A RabbitMQ node of the container tests, with the management API (Flower's Broker tab): loopback
    only, own ports, stopped by PID and removed at the end. Its guest user administers it from the host."""
    with private_node("taskqueue-containers", management=True, missing=pytest.fail) as broker:
        yield broker


@pytest.fixture(scope="session")
def render(container_broker: PrivateBroker, image: Build) -> Render:
    """The chart as the session's release runs it (queue "celery", Flower on a free port)."""
    chart = render_chart(chart_overrides(container_broker, free_port()))
    create_broker_user(container_broker, chart)
    return chart


@pytest.fixture
def isolated_render(container_broker: PrivateBroker, render: Render) -> Render:
    """A render with a queue of this test's own, for tests that stop or freeze what they run."""
    queue = f"ct-{uuid.uuid4().hex[:8]}"
    chart = render_chart(chart_overrides(container_broker, free_port(), queue=queue))
    assert chart.broker_credentials == render.broker_credentials
    return chart


@pytest.fixture
def pods(docker: Docker, image_user: str, isolated_render: Render) -> Iterator[Pods]:
    """Pods of the isolated render; every container is removed at the end of the test."""
    with running_pods(docker, image_user, isolated_render) as runner:
        yield runner


# --- the session's release: worker, producer and Flower running -----------------------------------------


@pytest.fixture(scope="session")
def release(docker: Docker, image_user: str, render: Render) -> Iterator[Release]:
    """The worker, producer and Flower of the default render, ready (their startup/readiness probes
    pass), shared by the tests that only watch them; removed at the end of the session."""
    with running_pods(docker, image_user, render) as pods:
        worker = start_ready(pods, render.workload("worker"))
        flower = start_ready(pods, render.workload("flower"))
        producer = start_ready(pods, render.workload("producer"))
        yield Release(render, pods, worker, producer, flower)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium from Debian for one module (no network of its own: it only opens Flower on loopback).
    Not for the session: Playwright's sync API keeps an asyncio loop running in the main thread while it is
    open, and every later `asyncio.run()` of the session (pyhelm3) would fail."""
    if not CHROMIUM.exists():
        run_setup_docker()  # installs chromium (root with apt)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-docker.sh as root (installs chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
