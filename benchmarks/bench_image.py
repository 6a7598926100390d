"""The project image's size and build time, and the memory of each chart container after N ``add`` tasks.

Builds docker/Dockerfile as tests/container does (on the official base if the engine has it, else on
docker/debian-base.sh's stand-in), renders the chart with its default values for that image, and runs the
worker, Flower and producer pods as containers (tests/container/pods.py: the rendered command, env,
security context, tmpfs and limits) against a private RabbitMQ node. One change from the render: the
producer's PRODUCER_INTERVAL, so that N tasks take seconds rather than N x 5 s.

    .venv/bin/python benchmarks/bench_image.py [--tasks 1000] [--no-cache]

Uses the Docker engine that answers, else starts a dockerd of its own (root) and stops it at the end.
Prints the build time (--no-cache: a cold build on the same base), the image size, and per container the
RSS and PSS summed over its processes and the memory its cgroup is charged with.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.container.engine import Docker, find_or_start_engine, image_size
from tests.container.image import build_image
from tests.container.pods import Container
from tests.container.release import (
    chart_overrides,
    create_broker_user,
    make_pods,
    render_chart,
    start_ready,
)
from tests.support.ports import free_port

from taskqueue.private_broker import PrivateBroker, find_rabbitmq_server

MIB = 1024 * 1024


def memory(docker: Docker, container: Container) -> tuple[int, int]:
    """(RSS, PSS) summed over the container's processes (host view), in bytes. RSS counts the pages a
    worker's pool processes share with their parent once per process; PSS splits them between them."""
    pids = docker.run("top", container.id, "-eo", "pid").stdout.split()[1:]
    rss = pss = 0
    for pid in pids:
        try:
            info = psutil.Process(int(pid)).memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss, pss = rss + info.rss, pss + info.pss
    return rss, pss


def cgroup_memory(docker: Docker, container: Container) -> str:
    return docker.run("stats", "--no-stream", "--format", "{{.MemUsage}}", container.id).stdout.strip()


def succeeded(flower_url: str, auth: tuple[str, str]) -> int:
    response = requests.get(f"{flower_url}api/tasks", params={"state": "SUCCESS", "limit": "100000"},
                            auth=auth, timeout=30)
    return len(response.json()) if response.status_code == 200 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="producer's tasks per second")
    parser.add_argument("--no-cache", action="store_true", help="a cold build (the base is kept)")
    options = parser.parse_args()

    server = find_rabbitmq_server()
    if server is None:
        raise SystemExit("rabbitmq-server is not installed: run scripts/setup.sh")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-image-"))  # dockerd's log, when it is ours
    engine = find_or_start_engine(log_dir)
    docker = engine.docker
    broker = PrivateBroker.prepare(server, dict(os.environ), name="bench-image", management=True)
    pods = None
    try:
        build = build_image(docker, no_cache=options.no_cache)
        print(f"base image: {build.base}")
        print(f"build: {build.seconds:.1f} s ({'--no-cache' if options.no_cache else 'with the cache'})")
        print(f"image {build.ref}: {image_size(docker, build.ref) / 1e6:.0f} MB")
        broker.start()
        render = render_chart(chart_overrides(broker, free_port()))
        create_broker_user(broker, render)
        user = docker.run("image", "inspect", "--format", "{{.Config.User}}", build.ref).stdout.strip()
        pods = make_pods(docker, user, render)
        worker = start_ready(pods, render.workload("worker"))
        flower = start_ready(pods, render.workload("flower"))
        producer = pods.run(render.workload("producer"), env={"PRODUCER_INTERVAL": str(1 / options.rate)})
        flower_url = f"http://127.0.0.1:{render.flower_port}/"
        started = time.monotonic()
        deadline = started + options.tasks / options.rate * 5 + 120
        done = 0
        while done < options.tasks:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {done} of {options.tasks} tasks succeeded in time")
            time.sleep(1)
            done = succeeded(flower_url, render.flower_auth)
        print(f"{done} add tasks succeeded in {time.monotonic() - started:.1f} s (Flower's count)")
        for container in (worker, producer, flower):
            limit = container.source.spec["resources"]["limits"]["memory"]
            rss, pss = memory(docker, container)
            processes = len(docker.run("top", container.id, "-eo", "pid").stdout.split()) - 1
            print(f"{container.source.component:>8}: RSS {rss / MIB:6.1f} MiB, PSS {pss / MIB:6.1f} MiB over "
                  f"{processes} processes (cgroup: {cgroup_memory(docker, container)}, limit {limit})")
    finally:
        if pods is not None:
            pods.remove_all()
        broker.remove()
        engine.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
