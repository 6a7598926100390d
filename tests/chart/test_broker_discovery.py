"""Broker discovery: every taskqueue container (worker, producer, Flower, the helm test pod) gets
RABBITMQ_SERVICE_SERVICE_HOST/PORT explicitly, pointing at the broker Service's DNS name, or at the external
broker."""

from __future__ import annotations

import base64
from typing import Any

from tests.chart.rendering import (
    NAMESPACE,
    Manifest,
    RenderFn,
    effective_values,
    env_of,
    env_value,
    pod_spec_of,
)

CLIENT_COMPONENTS = ("worker", "producer", "flower")
EXTERNAL = {
    "host": "mq.example.com",
    "port": 5671,
    "vhost": "jobs",
    "username": "app",
    "existingSecret": "mq-creds",
}


def client_containers(manifest: Manifest) -> list[tuple[str, dict[str, Any]]]:
    """(component, container) of every broker client the values enable, test pods included."""
    clients = [
        (component, manifest.container(component))
        for component in CLIENT_COMPONENTS
        if any(o["kind"] in ("Deployment", "StatefulSet") for o in manifest.find(component=component))
    ]
    clients += [("test", pod_spec_of(pod)["containers"][0]) for pod in manifest.test_pods()]
    assert clients, f"[{manifest.values}] no broker client rendered"
    return clients


def test_clients_point_at_the_broker(manifest: Manifest) -> None:
    values = effective_values(manifest.values)
    if values["rabbitmq"]["enabled"]:
        service = manifest.broker_service()
        port = str(next(p["port"] for p in service["spec"]["ports"] if p["name"] == "amqp"))
        host = f"{service['metadata']['name']}.{NAMESPACE}.svc.{values['clusterDomain']}"
    else:
        assert not manifest.find(component="rabbitmq"), "external broker, yet the chart deploys RabbitMQ"
        external = values["externalBroker"]
        host, port = external["host"], str(external["port"])
    for component, container in client_containers(manifest):
        env = env_of(container)
        if not values["rabbitmq"]["enabled"] and values["externalBroker"]["urlKey"]:
            # A full URL wins over host/port: it must come from the Secret, and nothing may contradict it.
            expected = {
                "name": values["externalBroker"]["existingSecret"],
                "key": values["externalBroker"]["urlKey"],
            }
            assert env["BROKER_URL"]["valueFrom"]["secretKeyRef"] == expected, component
            continue
        assert env_value(container, "RABBITMQ_SERVICE_SERVICE_HOST") == host, component
        assert env_value(container, "RABBITMQ_SERVICE_SERVICE_PORT") == port, component


def test_test_pod_is_a_broker_client(default_manifest: Manifest) -> None:
    assert [c for component, c in client_containers(default_manifest) if component == "test"]


def test_service_links_off_so_discovery_is_explicit(manifest: Manifest) -> None:
    """Kubernetes' own RABBITMQ_SERVICE_* link variables exist only for a Service of that exact name in the
    same namespace; the chart sets them itself, so links are off."""
    for owner in manifest.pod_owners():
        assert pod_spec_of(owner).get("enableServiceLinks") is False, owner["metadata"]["name"]


def test_amqp_port_and_cluster_domain_overrides(render: RenderFn) -> None:
    manifest = render({"rabbitmq": {"service": {"ports": {"amqp": 5673}}}, "clusterDomain": "corp.local"})
    for component, container in client_containers(manifest):
        assert env_value(container, "RABBITMQ_SERVICE_SERVICE_PORT") == "5673", component
        assert env_value(container, "RABBITMQ_SERVICE_SERVICE_HOST").endswith(".svc.corp.local"), component


def test_external_broker_host_port_vhost_user(render: RenderFn) -> None:
    manifest = render({"rabbitmq": {"enabled": False}, "externalBroker": EXTERNAL})
    assert not manifest.find(component="rabbitmq")
    for component, container in client_containers(manifest):
        assert env_value(container, "RABBITMQ_SERVICE_SERVICE_HOST") == "mq.example.com", component
        assert env_value(container, "RABBITMQ_SERVICE_SERVICE_PORT") == "5671", component
        assert env_value(container, "RABBITMQ_VHOST") == "jobs", component
        reference = env_of(container)["RABBITMQ_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert reference["name"] == "mq-creds", component
        # externalBroker.username lands in a chart-owned Secret: read by secretKeyRef like the password.
        user_ref = env_of(container)["RABBITMQ_USERNAME"]["valueFrom"]["secretKeyRef"]
        secret = manifest.one("Secret", name=user_ref["name"])
        assert base64.b64decode(secret["data"][user_ref["key"]]).decode() == "app", component


def test_external_broker_user_from_existing_secret(render: RenderFn) -> None:
    external = {**EXTERNAL, "username": "", "usernameKey": "login"}
    manifest = render({"rabbitmq": {"enabled": False}, "externalBroker": external})
    assert not manifest.find("Secret", component="broker"), "the user is in mq-creds: no username Secret"
    for component, container in client_containers(manifest):
        user_ref = env_of(container)["RABBITMQ_USERNAME"]["valueFrom"]["secretKeyRef"]
        assert user_ref == {"name": "mq-creds", "key": "login"}, component


def test_external_broker_url_from_secret(render: RenderFn) -> None:
    external = {"existingSecret": "mq-url", "urlKey": "url"}
    manifest = render({"rabbitmq": {"enabled": False}, "externalBroker": external})
    for component, container in client_containers(manifest):
        env = env_of(container)
        assert env["BROKER_URL"]["valueFrom"]["secretKeyRef"] == {"name": "mq-url", "key": "url"}, component
        assert "RABBITMQ_PASSWORD" not in env, component
        assert "RABBITMQ_USERNAME" not in env, component
    assert not manifest.find("Secret", component="broker"), "the URL carries the user: no username Secret"
