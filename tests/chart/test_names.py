"""Names within every limit Kubernetes enforces, for every legal release name (1 to 53 characters, dots,
leading digits, the chart's name inside), nameOverride and fullnameOverride, in a 63-character namespace.

Schemas (test_schema.py) only bound metadata.name at 253. The limits that break a release are elsewhere:
the StatefulSet controller labels each revision controller-revision-hash=<name>-<hash> (a label value,
<= 63), its pods are <name>-<ordinal> (hostnames, DNS labels), Services need DNS-1035 labels, and the
RabbitMQ node name rabbit@<pod>.<headless>.<namespace>.svc.<domain> must resolve. Each check below is the
rule a controller or the API server applies; a live cluster then only has to confirm the pods start.

Also: two releases in one namespace never claim the same object (issue 7, item 2)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml

from tests.chart.rendering import (
    DEFAULT_VALUES,
    HelmFailed,
    Manifest,
    RenderCache,
    RenderFn,
    ValuesSet,
    all_containers,
    env_of,
    env_value,
    labels_of,
    objref,
    pod_spec_of,
)

CHART_NAME = "celery-rabbitmq"
#: Longest names: Helm's release names, Kubernetes' namespaces (DNS labels).
MAX_RELEASE = 53
LONG_NAMESPACE = "queues-" + "n" * 56
assert len(LONG_NAMESPACE) == 63

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
#: What controllers append: a revision or pod-template hash (32-bit FNV, up to 10 characters).
HASH = "h" * 10
#: rabbitmq.replicaCount's schema maximum is 15: the longest pod ordinal.
MAX_ORDINAL = 14

#: A values set that renders every kind of object the chart has with a bundled broker (clustered, so
#: RBAC and PDB; KEDA; Ingress and PVC; the secrets hook), and one with the external-broker objects.
EVERYTHING = ValuesSet.of(
    "everything",
    overrides={
        "rabbitmq": {"replicaCount": 3},
        "worker": {"keda": {"enabled": True}},
        "secrets": {"mode": "hook"},
        "networkPolicy": {
            "flowerFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
            ],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}],
        },
        "flower": {
            "ingress": {"enabled": True, "hosts": ["tasks.example.com"], "path": "/flower"},
            "persistence": {"enabled": True},
        },
    },
)
EXTERNAL = ValuesSet.of(
    "external-broker",
    overrides={
        "rabbitmq": {"enabled": False},
        "externalBroker": {"host": "mq.example.com", "username": "app", "existingSecret": "mq"},
        "worker": {"autoscaling": {"enabled": True}},
    },
)


def release_of_length(length: int) -> str:
    """A release name of `length` characters with dashes and digits, so that cuts land on dashes too."""
    name = ("tq-" + "queue7-" * 8)[:length]
    return name[:-1] + "z" if name.endswith("-") else name


TRICKY_RELEASES = [
    "1",  # a leading digit: no valid Service name as is
    "0abc",
    "12345",
    "a.b",  # Helm allows dots; names with dots are no DNS labels
    "my.release.v2",
    CHART_NAME,  # contains the chart name: the release alone is the base
    f"prod-{CHART_NAME}-eu",
    "a--b",
    "x" * 25 + "--" + "y" * 26,
    "9" + "a" * 52,
    "a.b." * 13 + "c",
    f"{'r' * 37}-{CHART_NAME}",  # 53 characters, the chart name at the end
]
OVERRIDES: list[dict[str, Any]] = [
    {"nameOverride": "n" * 63},
    {"nameOverride": "x"},
    {"fullnameOverride": "f" * 63},
    {"fullnameOverride": "a"},
    {"fullnameOverride": "jobs-" + "j" * 47},
]


def case(values: ValuesSet, release: str, overrides: Mapping[str, Any] | None = None) -> ValuesSet:
    if overrides:
        values = values.with_overrides(overrides)
    return values.as_release(release, LONG_NAMESPACE)


CASES: list[ValuesSet] = [
    *(case(EVERYTHING, release_of_length(n)) for n in range(1, MAX_RELEASE + 1)),
    *(case(EVERYTHING, release) for release in TRICKY_RELEASES),
    *(case(EXTERNAL, release_of_length(n)) for n in (1, 27, 28, 43, 44, MAX_RELEASE)),
    *(case(EXTERNAL, release) for release in ("1", "a.b", "9" + "a" * 52)),
    *(case(EVERYTHING, release, o) for o in OVERRIDES for release in ("tq", release_of_length(MAX_RELEASE))),
]


def test_release_names_cover_every_length() -> None:
    lengths = {len(release_of_length(n)) for n in range(1, MAX_RELEASE + 1)}
    assert lengths == set(range(1, MAX_RELEASE + 1))
    assert all(DNS_SUBDOMAIN.match(v.release) and len(v.release) <= MAX_RELEASE for v in CASES)


@pytest.fixture(scope="module")
def rendered(render_cache: RenderCache) -> dict[ValuesSet, Manifest]:
    """Every case, rendered in parallel (about a hundred renders)."""

    def one(values: ValuesSet) -> tuple[ValuesSet, Manifest | HelmFailed]:
        return values, render_cache.render_or_error(values)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(one, [*CASES, *(v.as_release("tq") for v in (EVERYTHING, EXTERNAL))]))
    failed = {str(v): r.stderr for v, r in results.items() if isinstance(r, HelmFailed)}
    assert not failed, f"renders refused: {failed}"
    return {v: r for v, r in results.items() if isinstance(r, Manifest)}


# ---------------------------------------------------------------------------------------------- the rules


def sources(manifest: Manifest) -> Iterator[tuple[str, dict[str, Any]]]:
    """(template path #n, object) for every object, identified by the template that rendered it."""
    counts: dict[str, int] = {}
    for document in manifest.text.split("\n---\n"):
        match = re.search(r"^# Source: (\S+)$", document, re.MULTILINE)
        obj = yaml.safe_load(document)
        if not obj or not match:
            continue
        counts[match.group(1)] = counts.get(match.group(1), 0) + 1
        yield f"{match.group(1)} #{counts[match.group(1)]}", obj


def base_name(values: ValuesSet) -> str:
    """The unbounded prefix the chart builds names from (its fullname before any cut)."""
    overrides = values.overrides
    if overrides.get("fullnameOverride"):
        return str(overrides["fullnameOverride"])
    name = overrides.get("nameOverride") or CHART_NAME
    return values.release if name in values.release else f"{values.release}-{name}"


def expected_name(values: ValuesSet, suffix: str, limit: int) -> str:
    """<base>-<suffix> when it fits and is a DNS label; else the base made one (dots to dashes, "r-"
    before a leading digit), cut and followed by 5 hex digits of sha256(base), then the suffix."""
    raw = base_name(values)
    base = raw.replace(".", "-")
    base = f"r-{base}" if base[0].isdigit() else base
    tail = f"-{suffix}" if suffix else ""
    room = limit - len(tail)
    if base == raw and len(base) <= room:
        return base + tail
    digest = hashlib.sha256(raw.encode()).hexdigest()[:5]
    return f"{base[: room - 6].rstrip('-')}-{digest}{tail}"


#: Objects named <fullname>-rabbitmq share the StatefulSet's name, bounded at 52; everything else at 63.
STATEFULSET_FAMILY_SUFFIX = "rabbitmq"


def suffixes(reference: Manifest) -> dict[str, str]:
    """What each template appends to the fullname, read from the render of release `tq`."""
    prefix = f"tq-{CHART_NAME}"
    found: dict[str, str] = {}
    for source, obj in sources(reference):
        name = obj["metadata"]["name"]
        assert name.startswith(prefix), f"{source}: {name} is not named after the release"
        found[source] = name[len(prefix) :].lstrip("-")
    return found


def label_problems(where: str, labels: Mapping[str, Any]) -> list[str]:
    return [
        f"{where}: label {key}={value!r} is no label value"
        for key, value in labels.items()
        if len(str(value)) > 63 or not LABEL_VALUE.match(str(value))
    ]


def all_labels(obj: dict[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield "metadata.labels", labels_of(obj)
    spec = obj.get("spec") or {}
    if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
        yield "pod template labels", spec["template"]["metadata"].get("labels") or {}
    if "selector" in spec and isinstance(spec["selector"], dict):
        yield "selector", spec["selector"].get("matchLabels", spec["selector"])
    for claim in spec.get("volumeClaimTemplates") or []:
        yield "volumeClaimTemplate labels", claim["metadata"].get("labels") or {}


def name_problems(manifest: Manifest) -> list[str]:
    """Every Kubernetes limit on the names and labels of one render."""
    problems: list[str] = []
    namespace = manifest.values.namespace
    services = {o["metadata"]["name"] for o in manifest.find("Service")}
    raw_base = base_name(manifest.values)
    for obj in manifest.objects:
        name, kind, where = obj["metadata"]["name"], obj["kind"], objref(obj)
        # The chart's own promise: every name is a DNS label, never ends in "-", adds no "--".
        if len(name) > 63 or not DNS_LABEL.match(name):
            problems.append(f"{where}: not a DNS label of <= 63 characters ({len(name)})")
        if "--" in name and "--" not in raw_base:
            problems.append(f"{where}: '--' in the name")
        for part, labels in all_labels(obj):
            problems += label_problems(f"{where} {part}", labels)
        if kind == "Service" and not DNS_1035_LABEL.match(name):
            problems.append(f"{where}: Service names are DNS-1035 labels (a letter first)")
        if kind == "StatefulSet":
            revision_label = f"{name}-{HASH}"
            if len(revision_label) > 63:
                problems.append(
                    f"{where}: controller-revision-hash {revision_label} is {len(revision_label)} long"
                )
            pod = f"{name}-{MAX_ORDINAL}"
            if len(pod) > 63 or not DNS_LABEL.match(pod):
                problems.append(f"{where}: pod {pod} is no hostname")
            for claim in obj["spec"].get("volumeClaimTemplates") or []:
                pvc = f"{claim['metadata']['name']}-{pod}"
                if len(pvc) > 253 or not DNS_SUBDOMAIN.match(pvc):
                    problems.append(f"{where}: PVC {pvc}")
            if obj["spec"]["serviceName"] not in services:
                problems.append(f"{where}: serviceName {obj['spec']['serviceName']} is not rendered")
            rabbitmq = next(c for c in pod_spec_of(obj)["containers"] if c["name"] == "rabbitmq")
            node = env_value(rabbitmq, "RABBITMQ_NODENAME")
            node = node.replace("$(MY_POD_NAME)", pod).replace("$(MY_POD_NAMESPACE)", namespace)
            host = node.partition("@")[2]
            bad_labels = [p for p in host.split(".") if len(p) > 63 or not DNS_LABEL.match(p)]
            if len(node) > 255 or len(host) > 253 or bad_labels:
                problems.append(f"{where}: node name {node} ({len(node)}), bad labels {bad_labels}")
        if kind == "Deployment" and len(f"{name}-{HASH}") > 253:
            problems.append(f"{where}: ReplicaSet name too long")
        if kind in ("Deployment", "StatefulSet", "Job", "Pod"):
            problems += broker_host_problems(obj, namespace, services)
    return problems


def broker_host_problems(owner: dict[str, Any], namespace: str, services: set[str]) -> list[str]:
    """The bundled broker's address given to the clients names a Service of this render."""
    problems = []
    for container in all_containers(owner):
        host = str(env_of(container).get("RABBITMQ_SERVICE_SERVICE_HOST", {}).get("value", ""))
        if host.endswith(f".{namespace}.svc.cluster.local") and host.split(".")[0] not in services:
            problems.append(f"{objref(owner)}/{container['name']}: broker host {host} is no rendered Service")
    return problems


def test_every_name_fits_every_limit(rendered: dict[ValuesSet, Manifest]) -> None:
    problems = [f"[{values}] {p}" for values in CASES for p in name_problems(rendered[values])]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


def test_names_follow_the_scheme(rendered: dict[ValuesSet, Manifest]) -> None:
    """Each object is named <fullname>-<its suffix>, the suffix whole, the fullname cut (with a hash) only
    when needed: the exact names a live-cluster test or a user can predict."""
    references = {v: suffixes(rendered[v.as_release("tq")]) for v in (EVERYTHING, EXTERNAL)}
    wrong: list[str] = []
    for values in CASES:
        family = EVERYTHING if values.overrides.get("secrets") else EXTERNAL
        reference = references[family]
        seen = dict(sources(rendered[values]))
        assert seen.keys() == reference.keys(), f"[{values}] other objects than for release tq"
        for source, obj in seen.items():
            suffix = reference[source]
            limit = 52 if suffix == STATEFULSET_FAMILY_SUFFIX else 63
            expected = expected_name(values, suffix, limit)
            if obj["metadata"]["name"] != expected:
                wrong.append(f"[{values}] {source}: {obj['metadata']['name']} != {expected}")
    assert not wrong, "\n".join(wrong[:40])


@pytest.mark.parametrize(
    ("release", "statefulset"),
    [
        ("tq", "tq-celery-rabbitmq-rabbitmq"),
        (release_of_length(27), "tq-queue7-queue7-queue7-que-celery-rabbitmq-rabbitmq"),
        ("a" * 53, "a" * 37 + "-b973d-rabbitmq"),
    ],
    ids=["tq", "27-chars-unchanged", "53-chars"],
)
def test_statefulset_names(render: RenderFn, release: str, statefulset: str) -> None:
    """Spelled out: names that fit are unchanged by the scheme (upgrades keep their StatefulSet and PVCs)."""
    manifest = render(DEFAULT_VALUES.as_release(release))
    assert manifest.workload("rabbitmq")["metadata"]["name"] == statefulset
    assert len(statefulset) <= 52


# ---------------------------------------------------------------------------------------------- two releases


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("tq", "tq-two"),
        ("a" * 53, "a" * 52 + "b"),  # differ past every cut
        (release_of_length(MAX_RELEASE), release_of_length(MAX_RELEASE - 1) + "x"),
        (CHART_NAME, f"{CHART_NAME}-2"),
    ],
    ids=["short", "53-chars-last-differs", "53-chars-dashes", "chart-name"],
)
def test_two_releases_in_one_namespace_share_no_object(render: RenderFn, first: str, second: str) -> None:
    """A second release in the namespace must not claim any object of the first (Helm refuses to take
    over an object another release owns): the broker Service included."""
    one, two = (render(EVERYTHING.as_release(r, "queues")) for r in (first, second))
    names = [{(o["kind"], o["metadata"]["name"]) for o in m.objects} for m in (one, two)]
    shared = names[0] & names[1]
    assert not shared, f"{first} and {second} both render {sorted(shared)}"


def test_broker_service_is_release_scoped_by_default(default_manifest: Manifest) -> None:
    assert default_manifest.broker_service()["metadata"]["name"] == "tq-celery-rabbitmq-rabbitmq"


def test_original_broker_service_name_by_one_value(render: RenderFn) -> None:
    """The original example's name stays one value away; the clients follow the Service, whatever its name."""
    manifest = render({"rabbitmq": {"service": {"name": "rabbitmq-service"}}})
    assert manifest.broker_service()["metadata"]["name"] == "rabbitmq-service"
    for component in ("worker", "producer", "flower"):
        host = env_value(manifest.container(component), "RABBITMQ_SERVICE_SERVICE_HOST")
        assert host == "rabbitmq-service.queues.svc.cluster.local", component
