"""Shared fixtures of the chart harness: the render helper with a session cache (each distinct values set
is rendered once per helm and Kubernetes version), the values-set parametrisation and the summary report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.chart.rendering import (
    ALL_VALUES_SETS,
    DEFAULT_HELM,
    DEFAULT_VALUES,
    HARNESS_REPORT,
    HELM_VERSIONS,
    HarnessReport,
    Helm,
    HelmFailed,
    Manifest,
    RenderCache,
    RenderErrorFn,
    RenderFn,
    ValuesSet,
    as_values_set,
    find_helm,
)

# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def render_cache() -> RenderCache:
    helms = {name: Helm(name, path) for name in HELM_VERSIONS if (path := find_helm(name)) is not None}
    return RenderCache(helms)


@pytest.fixture(scope="session")
def render(render_cache: RenderCache) -> RenderFn:
    """render(values=None, *, helm="helm4", kube_version=newest) -> Manifest; fails the test on a helm error.

    `values` is a ValuesSet or a dict of overrides on the chart defaults."""

    def _render(
        values: ValuesSet | Mapping[str, Any] | None = None,
        *,
        helm: str = DEFAULT_HELM,
        kube_version: str | None = None,
    ) -> Manifest:
        result = render_cache.render_or_error(as_values_set(values), helm, kube_version)
        if isinstance(result, HelmFailed):
            pytest.fail(str(result), pytrace=False)
        return result

    return _render


@pytest.fixture(scope="session")
def render_error(render_cache: RenderCache) -> RenderErrorFn:
    """render_error(values) -> helm's stderr; fails the test when the values render."""

    def _render_error(values: ValuesSet | Mapping[str, Any], *, helm: str = DEFAULT_HELM) -> str:
        values_set = as_values_set(values)
        result = render_cache.render_or_error(values_set, helm)
        if not isinstance(result, HelmFailed):
            pytest.fail(f"[{values_set}] rendered, but the chart should refuse it", pytrace=False)
        return result.stderr

    return _render_error


@pytest.fixture(scope="session")
def default_manifest(render: RenderFn) -> Manifest:
    return render(DEFAULT_VALUES)


@pytest.fixture(scope="session", params=ALL_VALUES_SETS, ids=str)
def values_set(request: pytest.FixtureRequest) -> ValuesSet:
    """Each named values set of the chart (default, ci/*, environments/*), one test per set."""
    values_set: ValuesSet = request.param
    return values_set


@pytest.fixture(scope="session")
def manifest(render: RenderFn, values_set: ValuesSet) -> Manifest:
    """The rendering of `values_set` by the default helm."""
    return render(values_set)


# ---------------------------------------------------------------------------------------------- reporting

@pytest.fixture(scope="session")
def report(pytestconfig: pytest.Config) -> HarnessReport:
    return pytestconfig.stash.setdefault(HARNESS_REPORT, HarnessReport())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    report = terminalreporter.config.stash.get(HARNESS_REPORT, None)
    if report is None or (not report.lines and not report.counts):
        return
    terminalreporter.section("chart harness")
    terminalreporter.write_line(f"values scenarios (default + values files): {len(ALL_VALUES_SETS)}")
    for key, amount in sorted(report.counts.items()):
        terminalreporter.write_line(f"{key}: {amount}")
    for key, line in sorted(report.lines.items()):
        terminalreporter.write_line(f"  {key}: {line}")
