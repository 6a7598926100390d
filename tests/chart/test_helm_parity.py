"""The chart renders the same objects under Helm 3 and Helm 4, for every values set, so users of either get
the same release.

Normalisation: only what differs between two renders by the SAME helm of the same input — generated
passwords/cookies (Secret data) and the checksums computed from them. Those paths are found by rendering
twice with Helm 4 rather than assumed, and the test also asserts they are nothing but Secret data and
checksum annotations (randomness anywhere else would break `helm upgrade` idempotence)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tests.chart.rendering import (
    HarnessReport,
    Manifest,
    RenderCache,
    RenderFn,
    ValuesSet,
)

Flat = dict[str, Any]

#: Paths allowed to vary between two renders of the same input: generated secrets and their checksums.
RANDOM_ALLOWED = re.compile(r"^Secret/\S+ \.(data|stringData)\.|\.annotations\.checksum/")


def object_key(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def flatten(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def flat_objects(objects: list[dict[str, Any]]) -> Flat:
    """Every leaf of every object as 'Kind/ns/name path' -> value; duplicate objects are an error."""
    flat: Flat = {}
    keys = [object_key(o) for o in objects]
    assert len(keys) == len(set(keys)), f"duplicate objects: {sorted(k for k in keys if keys.count(k) > 1)}"
    for obj in objects:
        flat.update(flatten(obj, object_key(obj) + " "))
    return flat


def random_paths(first: Flat, second: Flat) -> set[str]:
    assert first.keys() == second.keys(), "two renders of the same input produced different objects/fields"
    return {path for path in first if first[path] != second[path]}


def masked(flat: Flat, paths: set[str]) -> Flat:
    return {path: ("<generated>" if path in paths else value) for path, value in flat.items()}


def test_renders_identical_under_helm3_and_helm4(
    render: RenderFn, render_cache: RenderCache, values_set: ValuesSet, report: HarnessReport
) -> None:
    helm4: Manifest = render(values_set, helm="helm4")
    helm3: Manifest = render(values_set, helm="helm3")
    helm4_flat = flat_objects(helm4.objects)
    # A second Helm 4 render, outside the cache on purpose, shows what varies between renders.
    varying = random_paths(helm4_flat, flat_objects(render_cache.render_fresh(values_set).objects))
    unexpected = sorted(p for p in varying if not RANDOM_ALLOWED.search(p))
    assert not unexpected, f"[{values_set}] values that change on every render: {unexpected}"

    helm3_flat = flat_objects(helm3.objects)
    only_helm4 = sorted({k.split(" ")[0] for k in helm4_flat.keys() - helm3_flat.keys()})
    only_helm3 = sorted({k.split(" ")[0] for k in helm3_flat.keys() - helm4_flat.keys()})
    assert not only_helm4 and not only_helm3, (
        f"[{values_set}] objects with fields only in Helm 4: {only_helm4}; only in Helm 3: {only_helm3}"
    )
    helm4_masked, helm3_masked = masked(helm4_flat, varying), masked(helm3_flat, varying)
    differences = [
        f"{path}: helm4={helm4_masked[path]!r} helm3={helm3_masked[path]!r}"
        for path in sorted(helm4_masked)
        if helm4_masked[path] != helm3_masked[path]
    ]
    assert not differences, f"[{values_set}] Helm 3 and Helm 4 render differently:\n" + "\n".join(differences)
    report.add("objects identical under Helm 3 and Helm 4", len(helm4.objects))
    report.lines[f"parity {values_set}"] = (
        f"{len(helm4.objects)} objects identical, {len(varying)} generated values masked"
    )
