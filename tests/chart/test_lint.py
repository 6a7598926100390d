"""`helm lint --strict` of the chart with its defaults and with each of its values files (what `ct lint` runs
per ci/*-values.yaml; environments/* are linted too since users install with them)."""

from __future__ import annotations

import re

from tests.chart.rendering import HelmFailed, RenderCache, ValuesSet


def test_helm_lint_strict_passes(render_cache: RenderCache, values_set: ValuesSet) -> None:
    result = render_cache.lint(values_set)
    assert not isinstance(result, HelmFailed), str(result)
    # --strict turns warnings into failures; the summary line is the proof the chart was linted at all.
    assert re.search(r"1 chart\(s\) linted, 0 chart\(s\) failed", result), result
    assert "[WARNING]" not in result and "[ERROR]" not in result, result
