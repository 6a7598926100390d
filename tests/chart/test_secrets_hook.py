"""secrets.mode=hook, the GitOps path for generated credentials (issue 7, item 6).

Argo CD renders with `helm template`, where `lookup` finds nothing: with the default mode every render
holds new random passwords and a new Erlang cookie. With the hook, the manifests hold no generated value
(two renders are identical) and reference Secrets by stable names; a pre-install/pre-upgrade Job creates
each missing one once. The Job's script is run here, as rendered, against an in-memory Kubernetes API:
two syncs (two renders, each followed by its hook) leave the credentials unchanged."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chart.rendering import (
    DEFAULT_VALUES,
    NAMESPACE,
    Manifest,
    RenderCache,
    RenderFn,
    all_containers,
    objref,
    pod_spec_of,
)

HOOK = DEFAULT_VALUES.with_overrides({"secrets": {"mode": "hook"}, "rabbitmq": {"replicaCount": 3}}, "hook")
LOOKUP = DEFAULT_VALUES.with_overrides({"rabbitmq": {"replicaCount": 3}}, "lookup")
BROKER_SECRET = "tq-celery-rabbitmq-rabbitmq"
COOKIE_SECRET = "tq-celery-rabbitmq-rabbitmq-erlang-cookie"
FLOWER_SECRET = "tq-celery-rabbitmq-flower"
HOOK_NAME = "tq-celery-rabbitmq-secrets"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def secret_refs(manifest: Manifest) -> Iterator[tuple[str, str, str]]:
    """(where, Secret name, key) of every Secret a pod reads: env secretKeyRefs and secret volumes."""
    for owner in manifest.pod_owners():
        spec = pod_spec_of(owner)
        for container in all_containers(owner):
            for entry in container.get("env") or []:
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    yield f"{objref(owner)}/{container['name']}", ref["name"], ref["key"]
        for volume in spec.get("volumes") or []:
            if "secret" in volume:
                for item in volume["secret"].get("items") or []:
                    yield f"{objref(owner)} volume", volume["secret"]["secretName"], item["key"]


def hook_job(manifest: Manifest) -> dict[str, Any]:
    return manifest.one("Job", name=HOOK_NAME)


def hook_plan(manifest: Manifest) -> list[dict[str, Any]]:
    (container,) = pod_spec_of(hook_job(manifest))["containers"]
    plan = next(e["value"] for e in container["env"] if e["name"] == "PLAN")
    entries: list[dict[str, Any]] = json.loads(plan)
    return entries


class FakeApi:
    """The part of the Kubernetes API the hook uses: get and create Secrets in one namespace."""

    def __init__(self, secrets: dict[str, dict[str, Any]] | None = None) -> None:
        self.secrets = copy.deepcopy(secrets or {})
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        self.calls.append((method, path))
        collection = f"/api/v1/namespaces/{NAMESPACE}/secrets"
        if method == "GET" and path.startswith(collection + "/"):
            name = path[len(collection) + 1 :]
            if name in self.secrets:
                return 200, copy.deepcopy(self.secrets[name])
            return 404, {"message": f'secrets "{name}" not found'}
        if method == "POST" and path == collection and body is not None:
            if body["metadata"]["name"] in self.secrets:
                return 409, {"message": "already exists"}
            self.secrets[body["metadata"]["name"]] = copy.deepcopy(body)
            return 201, body
        return 405, {"message": f"{method} {path} is not what the hook may do"}

    def text(self, name: str, key: str) -> str:
        return base64.b64decode(self.secrets[name]["data"][key]).decode()


def run_hook(manifest: Manifest, api: FakeApi) -> list[str]:
    """Run the hook Job's script exactly as rendered (its command), with the Job's plan, against `api`."""
    (container,) = pod_spec_of(hook_job(manifest))["containers"]
    assert container["command"][:2] == ["python", "-c"]
    module: dict[str, Any] = {"__name__": "create_secrets"}
    exec(compile(container["command"][2], "create-secrets.py", "exec"), module)
    done: list[str] = module["run"](hook_plan(manifest), NAMESPACE, api.request)
    return done


@pytest.fixture(scope="module")
def two_hook_renders(render_cache: RenderCache) -> tuple[Manifest, Manifest]:
    return render_cache.render_fresh(HOOK), render_cache.render_fresh(HOOK)


def test_two_renders_are_identical_and_hold_no_generated_secret(
    two_hook_renders: tuple[Manifest, Manifest], render_cache: RenderCache
) -> None:
    first, second = two_hook_renders
    assert first.text == second.text, "the GitOps render changes between two `helm template` runs"
    assert not {BROKER_SECRET, COOKIE_SECRET, FLOWER_SECRET} & {
        s["metadata"]["name"] for s in first.find("Secret")
    }
    # What the default mode does under `helm template`, the problem this mode solves:
    lookup = [render_cache.render_fresh(LOOKUP).text for _ in range(2)]
    assert lookup[0] != lookup[1]


def test_pods_reference_exactly_what_the_hook_creates(two_hook_renders: tuple[Manifest, Manifest]) -> None:
    manifest, _ = two_hook_renders
    planned = {(entry["name"], key) for entry in hook_plan(manifest) for key in hook_keys(entry)}
    referenced = {(name, key) for _, name, key in secret_refs(manifest)}
    # Every key a pod reads is created (Flower's Secret also keeps user and password apart, for NOTES).
    assert referenced <= planned
    assert {name for name, _ in referenced} == {name for name, _ in planned}
    assert {name for name, _ in planned} == {BROKER_SECRET, COOKIE_SECRET, FLOWER_SECRET}


def hook_keys(entry: dict[str, Any]) -> set[str]:
    return {*entry.get("literal", {}), *entry.get("generated", {}), *entry.get("derived", {})}


def test_two_syncs_leave_the_credentials_unchanged(two_hook_renders: tuple[Manifest, Manifest]) -> None:
    """Sync 1 (render, hook, apply) creates the Secrets; sync 2 (a new render and its hook) only reads."""
    first, second = two_hook_renders
    api = FakeApi()
    assert run_hook(first, api) == [
        f"secret/{n} created" for n in (BROKER_SECRET, COOKIE_SECRET, FLOWER_SECRET)
    ]
    created = copy.deepcopy(api.secrets)
    api.calls.clear()
    assert run_hook(second, api) == [
        f"secret/{n} exists: left unchanged" for n in (BROKER_SECRET, COOKIE_SECRET, FLOWER_SECRET)
    ]
    assert api.secrets == created
    assert not [call for call in api.calls if call[0] in WRITES]

    assert api.text(BROKER_SECRET, "rabbitmq-username") == "taskqueue"
    password = api.text(BROKER_SECRET, "rabbitmq-password")
    cookie = api.text(COOKIE_SECRET, "rabbitmq-erlang-cookie")
    flower_password = api.text(FLOWER_SECRET, "password")
    assert len(password) == 32 and len(cookie) == 64 and len(flower_password) == 24
    assert password.isalnum() and cookie.isalnum() and flower_password.isalnum()
    assert api.text(FLOWER_SECRET, "basic-auth") == f"admin:{flower_password}"
    assert api.text(FLOWER_SECRET, "username") == "admin"
    metadata = api.secrets[BROKER_SECRET]["metadata"]
    # Argo CD's label tracking would prune objects carrying its instance label that it did not render.
    assert "app.kubernetes.io/instance" not in metadata["labels"]
    assert metadata["labels"]["celery-rabbitmq/release"] == "tq"
    assert metadata["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false"


def test_existing_secrets_are_kept_even_when_made_elsewhere(
    two_hook_renders: tuple[Manifest, Manifest],
) -> None:
    manifest, _ = two_hook_renders
    mine = {"metadata": {"name": COOKIE_SECRET}, "data": {"rabbitmq-erlang-cookie": "bXktY29va2ll"}}
    api = FakeApi({COOKIE_SECRET: mine})
    run_hook(manifest, api)
    assert api.secrets[COOKIE_SECRET] == mine
    assert ("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets") in api.calls  # the two others were created


def test_an_existing_secret_without_a_planned_key_fails_the_hook(
    two_hook_renders: tuple[Manifest, Manifest],
) -> None:
    """Pods would never start on it, and the hook never edits a Secret: fail, naming Secret and key."""
    manifest, _ = two_hook_renders
    api = FakeApi({FLOWER_SECRET: {"metadata": {"name": FLOWER_SECRET}, "data": {"password": "eA=="}}})
    with pytest.raises(RuntimeError, match=r"secret/tq-celery-rabbitmq-flower exists without the keys"):
        run_hook(manifest, api)
    assert api.secrets[FLOWER_SECRET]["data"] == {"password": "eA=="}


def test_hook_objects_run_before_install_and_upgrade_with_least_privilege(
    two_hook_renders: tuple[Manifest, Manifest],
) -> None:
    manifest, _ = two_hook_renders
    hooks = {objref(o): o["metadata"].get("annotations") or {} for o in manifest.objects}
    hook_objects = {ref: a for ref, a in hooks.items() if a.get("helm.sh/hook", "test") != "test"}
    assert set(hook_objects) == {
        f"{kind}/{HOOK_NAME}" for kind in ("ServiceAccount", "Role", "RoleBinding", "Job")
    }
    for ref, hook in hook_objects.items():
        assert hook["helm.sh/hook"] == "pre-install,pre-upgrade", ref
        assert hook["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded", ref
        # The RBAC objects exist before the Job runs (lower weight first).
        assert int(hook["helm.sh/hook-weight"]) == (0 if ref.startswith("Job/") else -10), ref

    role = manifest.one("Role", name=HOOK_NAME)
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [BROKER_SECRET, COOKIE_SECRET, FLOWER_SECRET],
            "verbs": ["get"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ]
    binding = manifest.one("RoleBinding", name=HOOK_NAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": HOOK_NAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": HOOK_NAME, "namespace": NAMESPACE}]

    pod = pod_spec_of(hook_job(manifest))
    assert pod["serviceAccountName"] == HOOK_NAME and pod["automountServiceAccountToken"] is False
    (token,) = [v for v in pod["volumes"] if v["name"] == "api-access"]
    assert token["projected"]["sources"][0] == {
        "serviceAccountToken": {"path": "token", "expirationSeconds": 600}
    }
    (container,) = pod["containers"]
    assert container["image"] == manifest.container("worker")["image"], "the hook runs the project image"
    # The plan is all the Job gets: names, keys, lengths and user names, no secret material.
    assert {e["name"] for e in container["env"]} == {"PLAN", "POD_NAMESPACE"}


@pytest.mark.parametrize(
    ("overrides", "hooked"),
    [
        ({"rabbitmq": {"auth": {"password": "an-explicit-broker-password"}}}, {COOKIE_SECRET, FLOWER_SECRET}),
        (
            {"rabbitmq": {"auth": {"existingSecret": "mine", "existingErlangCookieSecret": "cookie"}}},
            {FLOWER_SECRET},
        ),
        ({"flower": {"auth": {"enabled": False}}}, {BROKER_SECRET, COOKIE_SECRET}),
    ],
    ids=["explicit-password", "existing-secrets", "no-flower-auth"],
)
def test_only_generated_values_go_through_the_hook(
    render: RenderFn, overrides: dict[str, Any], hooked: set[str]
) -> None:
    """An explicit value renders the same every time: the chart keeps rendering that Secret itself."""
    manifest = render(HOOK.with_overrides(overrides))
    assert {entry["name"] for entry in hook_plan(manifest)} == hooked
    rendered = {s["metadata"]["name"] for s in manifest.find("Secret")}
    assert not rendered & hooked
    chart_secrets = {BROKER_SECRET, COOKIE_SECRET, FLOWER_SECRET} - hooked
    referenced = {name for _, name, _ in secret_refs(manifest)}
    assert chart_secrets & referenced <= rendered


def test_nothing_to_generate_no_hook(render: RenderFn) -> None:
    manifest = render(
        HOOK.with_overrides(
            {
                "rabbitmq": {"auth": {"existingSecret": "mine", "existingErlangCookieSecret": "cookie"}},
                "flower": {"auth": {"existingSecret": "flower"}},
            }
        )
    )
    assert not manifest.find(name=HOOK_NAME)


def test_default_mode_has_no_hook(default_manifest: Manifest) -> None:
    assert not default_manifest.find("Job")
    assert {BROKER_SECRET, COOKIE_SECRET, FLOWER_SECRET} <= {
        s["metadata"]["name"] for s in default_manifest.find("Secret")
    }
