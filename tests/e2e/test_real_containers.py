"""What only running containers can show: the producer's `add` tasks flow through the worker into Flower,
and the `helm test` pod's add(2, 3) really returns 5. On the simulated cluster these skip with that reason
(its pods are admitted, scheduled and reported Running, but no container runs); scripts/e2e-kind.sh runs
them on kind."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.helm_release import HelmRelease, ReleaseFactory
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.e2e, pytest.mark.timeout(900), pytest.mark.usefixtures("needs_containers"),
]

#: Runs inside the Flower container: asks its own API (with its own auth, prefix and port) for tasks.
FLOWER_TASKS_SCRIPT = """
import base64, os, urllib.request
prefix = os.environ.get("FLOWER_URL_PREFIX", "").strip("/")
path = prefix + "/api/tasks" if prefix else "api/tasks"
url = "http://127.0.0.1:%s/%s?limit=200" % (os.environ["FLOWER_PORT"], path)
request = urllib.request.Request(url)
if os.environ.get("FLOWER_BASIC_AUTH"):
    token = base64.b64encode(os.environ["FLOWER_BASIC_AUTH"].encode()).decode()
    request.add_header("Authorization", "Basic " + token)
print(urllib.request.urlopen(request, timeout=10).read().decode())
"""


@pytest.fixture
def running_release(release_factory: ReleaseFactory, image_values: dict[str, Any]) -> HelmRelease:
    release = release_factory()
    release.install(image_values)
    return release


def test_flower_lists_the_producers_add_tasks(running_release: HelmRelease) -> None:
    release = running_release
    flower = next(p["metadata"]["name"] for p in release.pods()
                  if p["metadata"]["labels"]["app.kubernetes.io/component"] == "flower")

    def succeeded_adds() -> int:
        out = release.cluster.run_kubectl("-n", release.namespace, "exec", flower, "-c", "flower", "--",
                                          "python", "-c", FLOWER_TASKS_SCRIPT)
        tasks = json.loads(out).values()
        done = sum(1 for t in tasks if t.get("name") == "taskqueue.tasks.add" and t.get("state") == "SUCCESS")
        return done if done >= 2 else 0

    # The producer dispatches add() every 5 s: within three minutes several have run.
    assert wait_until(succeeded_adds, timeout=180, interval=10, what="Flower to list two successful adds")


def test_helm_test_pod_computes_five(running_release: HelmRelease) -> None:
    assert "add(2, 3) = 5" in running_release.test()
