"""Flower: Deployment, Service on 5555, Ingress sub-path agreement (url_prefix == ingress path == probe
path), basic auth from a Secret, persistence."""

from __future__ import annotations

import base64
import importlib
import re
from typing import Any

import pytest

from tests.chart.rendering import Manifest, RenderFn, chart_values, env_of, env_value, pod_spec_of

FLOWER_VALUES = chart_values()["flower"]
HEALTH_FLOWER = ["taskqueue", "health", "flower"]
INGRESS = {"enabled": True, "className": "nginx", "hosts": ["ops.example.com"]}
INGRESS_PEERS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
SCRAPERS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
HTTP_PORT = [{"port": "http", "protocol": "TCP"}]
#: Flower serves these without its basic auth: no Ingress may route them.
UNAUTHENTICATED = ("metrics", "healthcheck")


def with_ingress(**ingress: Any) -> dict[str, Any]:
    """Flower behind the Ingress, its controller's namespace let in by the NetworkPolicy."""
    return {"flower": {"ingress": {**INGRESS, **ingress}}, "networkPolicy": {"flowerFrom": INGRESS_PEERS}}


def ingress_paths(manifest: Manifest) -> set[str]:
    ingress = manifest.one("Ingress", component="flower")
    return {path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}


def ingress_routes(manifest: Manifest, request_path: str) -> bool:
    """Whether some rule of the Flower Ingress matches the path, by the Ingress API's matching rules (the
    same for every controller): Exact is string equality, Prefix an element-wise prefix of the path
    split by "/"."""
    ingress = manifest.one("Ingress", component="flower")
    elements = [e for e in request_path.split("/") if e]
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            if path["pathType"] == "Exact" and path["path"] == request_path:
                return True
            if path["pathType"] == "Prefix":
                prefix = [e for e in path["path"].split("/") if e]
                if elements[: len(prefix)] == prefix:
                    return True
    return False


def flower_routes(url_prefix: str) -> list[str]:
    """A request path for every route of the installed Flower's URL map (flower.urls), under url_prefix,
    as Flower itself rewrites them (the catch-all 404 handler left out)."""
    urls = importlib.import_module("flower.urls")
    paths = []
    for handler in urls.handlers:
        pattern = handler.regex.pattern if hasattr(handler, "regex") else handler[0]
        if pattern.startswith(".*"):
            continue
        path = re.sub(r"\(\.[+*]\)", "x", pattern).replace("/?", "").rstrip("$")
        paths.append(f"/{url_prefix}{path}" if url_prefix else path)
    return paths


def test_flower_runs_taskqueue_flower_with_health_probes(default_manifest: Manifest) -> None:
    container = default_manifest.container("flower")
    assert container.get("args") == ["flower"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == HEALTH_FLOWER, probe


def test_flower_service_on_5555_reaches_the_container(default_manifest: Manifest) -> None:
    service = default_manifest.one("Service", component="flower")
    (port,) = service["spec"]["ports"]
    assert port["port"] == 5555
    container = default_manifest.container("flower")
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    target = port["targetPort"]
    assert (container_ports[target] if isinstance(target, str) else target) == 5555
    assert env_value(container, "FLOWER_PORT") == "5555"
    pod_labels = default_manifest.workload("flower")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_flower_listens_on_all_interfaces_in_the_pod(default_manifest: Manifest) -> None:
    assert env_value(default_manifest.container("flower"), "FLOWER_ADDRESS") == "0.0.0.0"


def test_port_override_moves_env_and_port(render: RenderFn) -> None:
    container = render({"flower": {"port": 8080}}).container("flower")
    assert env_value(container, "FLOWER_PORT") == "8080"
    assert {p["containerPort"] for p in container["ports"]} == {8080}


def test_no_ingress_by_default(default_manifest: Manifest) -> None:
    assert not default_manifest.find("Ingress")
    assert env_value(default_manifest.container("flower"), "FLOWER_URL_PREFIX") == ""


@pytest.mark.parametrize(
    ("path", "prefix"),
    [("/", ""), ("/flower", "flower"), ("/flower/", "flower"), ("/ops/flower", "ops/flower")],
)
def test_ingress_path_url_prefix_and_probe_agree(render: RenderFn, path: str, prefix: str) -> None:
    manifest = render(with_ingress(path=path))
    container = manifest.container("flower")
    assert env_value(container, "FLOWER_URL_PREFIX") == prefix
    root = f"/{prefix}/" if prefix else "/"
    assert root in ingress_paths(manifest)
    assert {p.rsplit("/", 1)[0] + "/" for p in ingress_paths(manifest)} == {root}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        handler = container[probe]
        if "httpGet" in handler:  # a direct HTTP probe must use the same prefix
            assert handler["httpGet"]["path"].startswith("/" + prefix), probe
        else:  # `taskqueue health flower` reads FLOWER_URL_PREFIX from this same env
            assert handler["exec"]["command"] == HEALTH_FLOWER, probe


def test_ingress_routes_to_the_flower_service(render: RenderFn) -> None:
    tls = [{"secretName": "flower-tls", "hosts": ["ops.example.com"]}]
    manifest = render(with_ingress(path="/flower", tls=tls))
    ingress = manifest.one("Ingress", component="flower")
    service = manifest.one("Service", component="flower")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == tls
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "ops.example.com"
    for backend_path in rule["http"]["paths"]:
        backend = backend_path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"] == {"name": service["spec"]["ports"][0]["name"]}


@pytest.mark.parametrize(
    ("path", "prefix"), [("/", ""), ("/flower", "flower"), ("/ops/flower/", "ops/flower")]
)
def test_ingress_routes_every_flower_page_but_its_unauthenticated_ones(
    render: RenderFn, path: str, prefix: str
) -> None:
    """Flower answers /metrics (and /healthcheck) without basic auth: the Ingress must not route them,
    for any controller, while every page, API call and static file of the UI stays reachable."""
    manifest = render(with_ingress(path=path))
    routes = flower_routes(prefix)
    assert len(routes) > 20, routes
    unauthenticated = {f"/{prefix}/{name}" if prefix else f"/{name}" for name in UNAUTHENTICATED}
    assert unauthenticated <= set(routes), "Flower's URL map changed: review what the Ingress routes"
    routed = {route for route in routes if ingress_routes(manifest, route)}
    assert routed == set(routes) - unauthenticated
    assert not ingress_routes(manifest, f"/{prefix}/metrics/" if prefix else "/metrics/")


def flower_policy_rules(manifest: Manifest) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = manifest.one("NetworkPolicy", component="flower")["spec"]["ingress"]
    return rules


def test_flower_port_is_closed_by_default(default_manifest: Manifest) -> None:
    """/metrics shares Flower's port: no source may reach it unless a value lets it in (a rule without
    peers would admit every source)."""
    assert flower_policy_rules(default_manifest) == []


def test_flower_port_admits_the_ingress_controller_and_the_scrapers(render: RenderFn) -> None:
    manifest = render({"networkPolicy": {"flowerFrom": INGRESS_PEERS, "metricsFrom": SCRAPERS}})
    assert flower_policy_rules(manifest) == [
        {"from": INGRESS_PEERS, "ports": HTTP_PORT},
        {"from": SCRAPERS, "ports": HTTP_PORT},
    ]


def test_scrapers_reach_flower_and_rabbitmq_metrics(render: RenderFn) -> None:
    manifest = render({"networkPolicy": {"metricsFrom": SCRAPERS}})
    assert flower_policy_rules(manifest) == [{"from": SCRAPERS, "ports": HTTP_PORT}]
    broker_rules = manifest.one("NetworkPolicy", component="rabbitmq")["spec"]["ingress"]
    assert {"from": SCRAPERS, "ports": [{"port": "metrics", "protocol": "TCP"}]} in broker_rules


def test_basic_auth_comes_from_a_secret(default_manifest: Manifest) -> None:
    container = default_manifest.container("flower")
    reference = env_of(container)["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    secret = default_manifest.one("Secret", name=reference["name"])
    user, _, password = base64.b64decode(secret["data"][reference["key"]]).decode().partition(":")
    assert user == FLOWER_VALUES["auth"]["username"]
    assert len(password) == 24 and password.isalnum()  # randAlphaNum 24, generated by the chart
    assert "FLOWER_ALLOW_UNAUTHENTICATED" not in env_of(container)


def test_explicit_flower_password(render: RenderFn) -> None:
    manifest = render({"flower": {"auth": {"username": "ops", "password": "flower-pass-123"}}})
    reference = env_of(manifest.container("flower"))["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    secret = manifest.one("Secret", name=reference["name"])
    assert base64.b64decode(secret["data"][reference["key"]]).decode() == "ops:flower-pass-123"


def test_existing_basic_auth_secret(render: RenderFn) -> None:
    manifest = render({"flower": {"auth": {"existingSecret": "flower-creds", "existingSecretKey": "auth"}}})
    reference = env_of(manifest.container("flower"))["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "flower-creds", "key": "auth"}
    assert not manifest.find("Secret", component="flower")


def test_auth_disabled_is_explicit(render: RenderFn) -> None:
    container = render({"flower": {"auth": {"enabled": False}}}).container("flower")
    assert "FLOWER_BASIC_AUTH" not in env_of(container)
    assert env_value(container, "FLOWER_ALLOW_UNAUTHENTICATED") == "true"


@pytest.mark.parametrize("replicas", [0, 1, 2])
def test_flower_replica_override_honoured(render: RenderFn, replicas: int) -> None:
    assert render({"flower": {"replicaCount": replicas}}).workload("flower")["spec"]["replicas"] == replicas


def test_flower_persistence_mounts_a_claim_for_its_db(render: RenderFn) -> None:
    manifest = render({"flower": {"persistence": {"enabled": True, "size": "2Gi"}}})
    claim = manifest.one("PersistentVolumeClaim", component="flower")
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    spec = pod_spec_of(manifest.workload("flower"))
    claims = {
        v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v
    }
    assert claims == {claim["metadata"]["name"]}
    container = manifest.container("flower")
    assert env_value(container, "FLOWER_PERSISTENT") == "true"
    db_dir = env_value(container, "FLOWER_DB").rsplit("/", 1)[0]
    assert db_dir in {m["mountPath"] for m in container["volumeMounts"]}


def test_flower_can_be_disabled(render: RenderFn) -> None:
    assert not render({"flower": {"enabled": False}}).find(component="flower")


def test_broker_tab_reads_the_bundled_brokers_management_api(default_manifest: Manifest) -> None:
    flower = default_manifest.container("flower")
    service = default_manifest.broker_service()
    management = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "management")
    # no credentials in the URL: Flower signs in with the broker user and password from the Secret
    assert env_value(flower, "FLOWER_BROKER_API") == (
        f"http://{service['metadata']['name']}.queues.svc.cluster.local:{management}/api/")
    assert {"RABBITMQ_USERNAME", "RABBITMQ_PASSWORD"} <= set(env_of(flower))


def test_broker_network_policy_lets_only_flower_into_the_management_port(render: RenderFn) -> None:
    manifest = render({"networkPolicy": {"enabled": True}})
    policy = manifest.one("NetworkPolicy", component="rabbitmq")
    management_rules = [r for r in policy["spec"]["ingress"]
                        if any(p["port"] == "management" for p in r.get("ports", []))]
    assert [r["from"] for r in management_rules] == [[{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "celery-rabbitmq", "app.kubernetes.io/instance": "tq",
        "app.kubernetes.io/component": "flower"}}}]]


def test_external_broker_api_is_used_as_given(render: RenderFn) -> None:
    api = "https://mq.example.internal:15671/api/"
    manifest = render({"flower": {"brokerApi": api}})
    assert env_value(manifest.container("flower"), "FLOWER_BROKER_API") == api
