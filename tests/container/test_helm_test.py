"""The chart's `helm test` pod, run as a container against the release's worker."""

from __future__ import annotations

import pytest

from tests.chart.rendering import chart_values
from tests.container.release import CONTAINER_TIMEOUT, Release

pytestmark = [pytest.mark.container, pytest.mark.timeout(CONTAINER_TIMEOUT)]


def test_helm_test_pod_exits_0_after_computing_add_2_3(release: Release) -> None:
    pod = release.render.test_pod()
    assert pod["spec"]["restartPolicy"] == "Never"
    timeout = float(chart_values()["tests"]["timeoutSeconds"])  # add(2, 3).get(timeout=...) in the pod
    container = release.pods.run(pod)
    code = container.wait(timeout=timeout + 60)
    output = container.logs()
    assert code == 0, output[-3000:]
    assert output.strip().splitlines()[-1] == "add(2, 3) = 5", output[-3000:]
