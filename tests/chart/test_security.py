"""Pod and container hardening of every values set, and credentials only by secretKeyRef."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.chart.rendering import (
    COMPONENT_LABEL,
    CREDENTIAL_ENV,
    Manifest,
    RenderFn,
    all_containers,
    chart_values,
    effective_values,
    labels_of,
    objref,
    pod_spec_of,
)

PROJECT_IMAGE = chart_values()["image"]["repository"]
#: Values with known credentials, so a leak of them into a ConfigMap or a plain env value is detectable.
KNOWN_CREDENTIALS = {
    "rabbitmq": {"auth": {"password": "Broker-Pw-8c1f2e", "erlangCookie": "Cookie5d0a9b7e3f1c4a6b8d2e"}},
    "flower": {"auth": {"password": "Flower-Pw-3b7d9a"}},
}


def taskqueue_containers(manifest: Manifest) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod owner, container) for every container running the project image (from global.imageRegistry's
    mirror when set)."""
    registry = (effective_values(manifest.values).get("global") or {}).get("imageRegistry")
    image = f"{registry}/{PROJECT_IMAGE}" if registry else PROJECT_IMAGE
    found = [
        (owner, container)
        for owner in manifest.pod_owners()
        for container in all_containers(owner)
        if container["image"].split("@")[0].rsplit(":", 1)[0] == image
    ]
    assert found, f"[{manifest.values}] no container runs {PROJECT_IMAGE}"
    return found


def effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    container_ctx = container.get("securityContext") or {}
    return container_ctx[key] if key in container_ctx else (pod.get("securityContext") or {}).get(key)


def test_taskqueue_containers_are_hardened(manifest: Manifest) -> None:
    problems: list[str] = []
    for owner, container in taskqueue_containers(manifest):
        pod = pod_spec_of(owner)
        ctx = container.get("securityContext") or {}
        where = f"{objref(owner)}/{container['name']}"
        if effective(pod, container, "runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if effective(pod, container, "runAsUser") in (0, None):
            problems.append(f"{where}: no non-zero runAsUser")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: root filesystem is writable")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: privilege escalation allowed")
        if ctx.get("privileged"):
            problems.append(f"{where}: privileged")
        if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where}: capabilities not dropped")
        if ((ctx.get("capabilities") or {}).get("add")) or []:
            problems.append(f"{where}: adds capabilities")
        if (effective(pod, container, "seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccomp is not RuntimeDefault")
        tmp_mounts = [m for m in container.get("volumeMounts") or [] if m["mountPath"] == "/tmp"]
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        if not tmp_mounts or "emptyDir" not in volumes.get(tmp_mounts[0]["name"], {}):
            problems.append(f"{where}: /tmp is not an emptyDir")
    assert not problems, f"[{manifest.values}]\n" + "\n".join(problems)


def test_every_pod_runs_unprivileged(manifest: Manifest) -> None:
    """RabbitMQ and its init container too: non-root, no escalation, no host namespaces."""
    problems: list[str] = []
    for owner in manifest.pod_owners():
        pod = pod_spec_of(owner)
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                problems.append(f"{objref(owner)}: {flag}")
        for container in all_containers(owner):
            ctx = container.get("securityContext") or {}
            where = f"{objref(owner)}/{container['name']}"
            if effective(pod, container, "runAsNonRoot") is not True:
                problems.append(f"{where}: may run as root")
            if ctx.get("allowPrivilegeEscalation") is not False or ctx.get("privileged"):
                problems.append(f"{where}: privilege escalation possible")
            if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{where}: capabilities not dropped")
    assert not problems, f"[{manifest.values}]\n" + "\n".join(problems)


def test_taskqueue_pods_mount_no_api_token(manifest: Manifest) -> None:
    for owner, _ in taskqueue_containers(manifest):
        assert pod_spec_of(owner).get("automountServiceAccountToken") is False, objref(owner)


def test_credentials_reach_containers_only_by_secret_key_ref(manifest: Manifest) -> None:
    plain = [
        f"{objref(owner)}/{container['name']}: {entry['name']}"
        for owner in manifest.pod_owners()
        for container in all_containers(owner)
        for entry in container.get("env") or []
        if CREDENTIAL_ENV.search(entry["name"])
        and ("value" in entry or "secretKeyRef" not in entry.get("valueFrom", {}))
    ]
    assert not plain, f"[{manifest.values}] credentials not from a secretKeyRef:\n" + "\n".join(plain)
    env_from_config_maps = [
        objref(owner)
        for owner in manifest.pod_owners()
        for container in all_containers(owner)
        for source in container.get("envFrom") or []
        if "configMapRef" in source
    ]
    assert not env_from_config_maps, "envFrom a ConfigMap hides which variables it sets"


def test_credential_pattern_covers_the_contract_names() -> None:
    for name in (
        "RABBITMQ_PASSWORD",
        "FLOWER_BASIC_AUTH",
        "BROKER_URL",
        "RABBITMQ_DEFAULT_PASS",
        "RABBITMQ_ERLANG_COOKIE",
        "RABBITMQ_USERNAME",
        "RABBITMQ_DEFAULT_USER",
    ):
        assert CREDENTIAL_ENV.search(name), name
    for name in ("RABBITMQ_SERVICE_SERVICE_HOST", "RABBITMQ_USE_LONGNAME", "QUEUE_NAME",
                 "WORKER_HEALTH_FILE"):
        assert not CREDENTIAL_ENV.search(name), name


def secret_key_refs(manifest: Manifest) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, env name, secretKeyRef) of every env entry read from a Secret."""
    return [
        (f"{objref(owner)}/{container['name']}", entry["name"], entry["valueFrom"]["secretKeyRef"])
        for owner in manifest.pod_owners()
        for container in all_containers(owner)
        for entry in container.get("env") or []
        if "secretKeyRef" in (entry.get("valueFrom") or {})
    ]


def test_broker_user_comes_from_a_secret(manifest: Manifest) -> None:
    """The contract names themselves, whatever the pattern above: every taskqueue container that talks to
    the broker by parts, and the bundled broker's default user, read the user by secretKeyRef."""
    values = effective_values(manifest.values)
    by_url = not values["rabbitmq"]["enabled"] and values["externalBroker"]["urlKey"]
    # Every taskqueue container but the secrets hook's, which never talks to the broker.
    hook = "secrets"
    clients = [(o, c) for o, c in taskqueue_containers(manifest) if labels_of(o)[COMPONENT_LABEL] != hook]
    expected = [] if by_url else [(o, c, "RABBITMQ_USERNAME") for o, c in clients]
    if values["rabbitmq"]["enabled"]:
        broker = manifest.container("rabbitmq", "rabbitmq")
        expected.append((manifest.workload("rabbitmq"), broker, "RABBITMQ_DEFAULT_USER"))
    problems = []
    for owner, container, name in expected:
        entry = {e["name"]: e for e in container.get("env") or []}.get(name)
        if entry is None or "value" in entry or "secretKeyRef" not in (entry.get("valueFrom") or {}):
            problems.append(f"{objref(owner)}/{container['name']}: {name} = {entry}")
    assert not problems, f"[{manifest.values}] broker user not from a secretKeyRef:\n" + "\n".join(problems)


def test_refs_to_chart_secrets_name_keys_they_hold(manifest: Manifest) -> None:
    """A secretKeyRef to a Secret the chart renders must name a key that Secret has (else the pod never
    starts: CreateContainerConfigError); refs to other Secrets are the user's existing ones."""
    rendered = {
        s["metadata"]["name"]: set(s.get("data") or {}) | set(s.get("stringData") or {})
        for s in manifest.find("Secret")
    }
    missing = [
        f"{where}: {name} -> {ref['name']}/{ref['key']}"
        for where, name, ref in secret_key_refs(manifest)
        if ref["name"] in rendered and ref["key"] not in rendered[ref["name"]]
    ]
    assert not missing, f"[{manifest.values}] refs to keys the chart's Secret lacks:\n" + "\n".join(missing)


def secret_strings(manifest: Manifest) -> set[str]:
    values: set[str] = set()
    for secret in manifest.find("Secret"):
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        data |= secret.get("stringData") or {}
        # User names are not secret on their own: they may appear in NOTES or in a Flower label.
        values |= {v for k, v in data.items() if not k.endswith(("username", "user"))}
    return {v for v in values if len(v) >= 8}


@pytest.mark.parametrize("extra", [{}, KNOWN_CREDENTIALS], ids=["generated", "explicit"])
def test_no_secret_material_outside_secrets(render: RenderFn, extra: dict[str, Any]) -> None:
    manifest = render(extra)
    secrets = secret_strings(manifest)
    if extra:
        assert {"Broker-Pw-8c1f2e", "Flower-Pw-3b7d9a"} <= {s.partition(":")[2] or s for s in secrets}
    assert secrets, "nothing to look for: the chart rendered no Secret"
    non_secret_text = "\n".join(str(obj) for obj in manifest.objects if obj["kind"] != "Secret")
    leaked = sorted(s for s in secrets if s in non_secret_text)
    assert not leaked, f"secret values outside Secrets (ConfigMaps, env, annotations): {len(leaked)}"


def test_no_c_force_root(manifest: Manifest) -> None:
    assert "C_FORCE_ROOT" not in manifest.text
