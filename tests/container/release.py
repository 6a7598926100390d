"""The chart as the container tests and the image benchmark run it: rendered for this machine, its broker
user created on the private node, its pods started as the kubelet would and watched."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from taskqueue.private_broker import PrivateBroker
from tests.chart.rendering import CHART_DIR, DEFAULT_VALUES, find_helm, newest_kube_version, parse_manifest
from tests.container.engine import Docker
from tests.container.image import IMAGE_REPOSITORY, IMAGE_TAG
from tests.container.pods import Container, Pods, decoded_secrets

#: Per-test timeout: the first test also waits for the session's image (a cold base and build take minutes).
CONTAINER_TIMEOUT = 900
#: Release and namespace of the renders (the broker Service's DNS name derives from them).
RELEASE, NAMESPACE = "tq", "queues"
#: The password every render of this process shares (one broker user for all), generated per process.
BROKER_PASSWORD = secrets.token_urlsafe(18)


def management(broker: PrivateBroker, method: str, path: str, body: Any = None) -> Any:
    """A call to the node's management API as guest (allowed from loopback)."""
    response = requests.request(method, f"{broker.management_api}{path}", auth=("guest", "guest"),
                                json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.content else None


def queue_stats(broker: PrivateBroker, queue: str) -> dict[str, int]:
    """The queue's live counters from the node itself (``rabbitmqctl``: not the sampled statistics)."""
    out = broker.ctl("--quiet", "list_queues", "--formatter", "json", "name", "messages_ready",
                     "messages_unacknowledged", "consumers")
    rows = {row["name"]: row for row in json.loads(out[out.index("["):])}
    row = rows.get(queue, {"messages_ready": 0, "messages_unacknowledged": 0, "consumers": 0})
    return {key: int(row[key]) for key in ("messages_ready", "messages_unacknowledged", "consumers")}


# --- the chart ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Render:
    """The chart rendered for this machine: its objects and what the tests look up in them."""

    objects: list[dict[str, Any]]
    values: Mapping[str, Any]

    def one(self, kind: str, component: str) -> dict[str, Any]:
        found = [obj for obj in self.objects if obj["kind"] == kind
                 and (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == component]
        assert len(found) == 1, f"{kind} of {component}: {len(found)}"
        return found[0]

    def workload(self, component: str) -> dict[str, Any]:
        return self.one("Deployment", component)

    def test_pod(self) -> dict[str, Any]:
        pods = [obj for obj in self.objects if obj["kind"] == "Pod"
                and "test" in (obj["metadata"].get("annotations") or {}).get("helm.sh/hook", "")]
        assert len(pods) == 1, pods
        return pods[0]

    @property
    def secrets(self) -> dict[str, dict[str, str]]:
        return decoded_secrets(self.objects)

    def container_env(self, component: str) -> list[dict[str, Any]]:
        pod = self.workload(component)["spec"]["template"]["spec"]
        env: list[dict[str, Any]] = pod["containers"][0]["env"]
        return env

    def env_value(self, component: str, name: str) -> str:
        return str(next(entry["value"] for entry in self.container_env(component) if entry["name"] == name))

    def secret_value(self, component: str, name: str) -> str:
        ref = next(entry for entry in self.container_env(component)
                   if entry["name"] == name)["valueFrom"]["secretKeyRef"]
        return self.secrets[ref["name"]][ref["key"]]

    @property
    def broker_host(self) -> str:
        return self.env_value("worker", "RABBITMQ_SERVICE_SERVICE_HOST")

    @property
    def queue(self) -> str:
        return self.env_value("worker", "QUEUE_NAME")

    @property
    def broker_credentials(self) -> tuple[str, str]:
        user = self.secret_value("worker", "RABBITMQ_USERNAME")
        return user, self.secret_value("worker", "RABBITMQ_PASSWORD")

    @property
    def flower_port(self) -> int:
        return int(self.env_value("flower", "FLOWER_PORT"))

    @property
    def flower_auth(self) -> tuple[str, str]:
        user, _, password = self.secret_value("flower", "FLOWER_BASIC_AUTH").partition(":")
        return user, password


def chart_overrides(broker: PrivateBroker, flower_port: int, queue: str | None = None) -> dict[str, Any]:
    """The chart's default values plus what this machine needs: the image just built, the broker's ports
    (its Service would map them: here the node listens on ports of its own), a free Flower port (host
    network), a password both renders share, and for isolated tests a queue of their own and the worker's
    per-task log lines (worker.logTasks), by which they count what each worker ran."""
    values: dict[str, Any] = {
        "image": {"repository": IMAGE_REPOSITORY, "tag": IMAGE_TAG},
        "rabbitmq": {"auth": {"password": BROKER_PASSWORD},
                     "service": {"ports": {"amqp": broker.port, "management": broker.management_port}}},
        "flower": {"port": flower_port},
    }
    if queue is not None:
        values["celery"] = {"queueName": queue}
        values["worker"] = {"logTasks": True}
    return values


def render_chart(overrides: dict[str, Any]) -> Render:
    """`helm template` of the chart with ``overrides`` on its defaults. The CLI directly, not pyhelm3: its
    asyncio.run() cannot run while Playwright's event loop (the session's browser) is alive."""
    executable = find_helm("helm4") or find_helm("helm3")
    if executable is None:
        raise AssertionError("helm is not installed: run scripts/setup.sh")
    values = DEFAULT_VALUES.with_overrides(overrides, name="container-tests")
    done = subprocess.run(
        [str(executable), "template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, "--kube-version",
         newest_kube_version(), *values.helm_args()],
        input=values.overrides_json, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    return Render(parse_manifest(done.stdout), overrides)


def create_broker_user(broker: PrivateBroker, render: Render) -> None:
    """The user the rendered Secret names, as the chart's RabbitMQ creates it (RABBITMQ_DEFAULT_USER: an
    administrator with every permission on "/")."""
    user, password = render.broker_credentials
    management(broker, "PUT", f"users/{quote(user, safe='')}",
               {"password": password, "tags": "administrator"})
    management(broker, "PUT", f"permissions/%2F/{quote(user, safe='')}",
               {"configure": ".*", "write": ".*", "read": ".*"})


def make_pods(docker: Docker, image_user: str, chart: Render) -> Pods:
    return Pods(docker, image_user, chart.secrets, [chart.broker_host])


@contextlib.contextmanager
def running_pods(docker: Docker, image_user: str, chart: Render) -> Iterator[Pods]:
    """Pods of ``chart`` for the block; every container they ran is removed after it."""
    pods = make_pods(docker, image_user, chart)
    try:
        yield pods
    finally:
        pods.remove_all()


@dataclass
class Release:
    render: Render
    pods: Pods
    worker: Container
    producer: Container
    flower: Container

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.render.flower_port}/"


def start_ready(pods: Pods, obj: Mapping[str, Any]) -> Container:
    """Start a pod and wait, as the kubelet would, for its startup probe (else its readiness probe)."""
    container = pods.run(obj)
    kind = "startupProbe" if container.source.probe("startupProbe") else "readinessProbe"
    result = container.wait_probe(kind)
    assert result.returncode == 0, (
        f"{container.source.component}: {kind} never passed: {result.stdout}{result.stderr}\n"
        f"log (tail):\n{container.logs()[-3000:]}")
    return container


def flower_get(release: Release, path: str) -> Any:
    response = requests.get(release.flower_url + path, auth=release.render.flower_auth, timeout=10)
    return response.json() if response.status_code == 200 else None


def sent_task_ids(producer: Container) -> dict[str, int]:
    """The add tasks the producer logged as sent: id -> x + y."""
    found = re.findall(r"sent add\((\d+), (\d+)\) id ([0-9a-f-]{36})", producer.logs())
    return {task_id: int(x) + int(y) for x, y, task_id in found}
