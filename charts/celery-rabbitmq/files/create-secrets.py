"""Create each missing Secret of the release once; never update, replace or delete an existing one.

Run by the chart's pre-install/pre-upgrade hook Job (secrets.mode=hook), so that generated credentials
survive every `helm template` (Argo CD) or `helm upgrade`: the chart renders no generated value, and
this Job creates a Secret only where none exists. It talks to the Kubernetes API with the Job's
ServiceAccount token (get/create secrets, nothing else), from the standard library only.

The plan, a JSON list in the PLAN environment variable, holds no secret material:
  [{"name": ..., "labels": {...}, "literal": {key: value}, "generated": {key: length},
    "derived": {key: "{other}:{key}"}}]
An existing Secret that lacks one of the planned keys fails the Job (naming the Secret and the keys):
the pods would not start, and this Job never changes a Secret.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import string
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
ALPHABET = string.ascii_letters + string.digits
#: Created once, never updated; Argo CD must neither report them as extraneous nor prune them.
ANNOTATIONS = {
    "celery-rabbitmq/created-by": "secrets hook: created once, never updated (delete it to get a new one)",
    "argocd.argoproj.io/compare-options": "IgnoreExtraneous",
    "argocd.argoproj.io/sync-options": "Prune=false",
}

#: request(method, path, body) -> (HTTP status, decoded JSON body)
Request = Callable[[str, str, "dict[str, Any] | None"], "tuple[int, dict[str, Any]]"]


def api_request(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    host = f"[{host}]" if ":" in host else host
    url = f"https://{host}:{os.environ['KUBERNETES_SERVICE_PORT']}{path}"
    with open(f"{ACCOUNT}/token", encoding="ascii") as token_file:
        token = token_file.read().strip()
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    context = ssl.create_default_context(cafile=f"{ACCOUNT}/ca.crt")
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def secret_data(entry: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = dict(entry.get("literal", {}))
    for key, length in entry.get("generated", {}).items():
        values[key] = "".join(secrets.choice(ALPHABET) for _ in range(int(length)))
    for key, template in entry.get("derived", {}).items():
        values[key] = template.format_map(values)
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


def planned_keys(entry: dict[str, Any]) -> set[str]:
    return {*entry.get("literal", {}), *entry.get("generated", {}), *entry.get("derived", {})}


def ensure(request: Request, namespace: str, entry: dict[str, Any]) -> str:
    """Create the Secret if it is missing; return what was done. Raises on anything unexpected."""
    name = entry["name"]
    path = f"/api/v1/namespaces/{namespace}/secrets"
    status, found = request("GET", f"{path}/{name}", None)
    if status == 200:
        missing = sorted(planned_keys(entry) - set(found.get("data") or {}))
        if missing:
            raise RuntimeError(
                f"secret/{name} exists without the keys {missing}: add them (this hook never edits a Secret)"
            )
        return f"secret/{name} exists: left unchanged"
    if status != 404:
        raise RuntimeError(f"reading secret/{name}: HTTP {status} {found.get('message', '')}")
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": entry.get("labels", {}), "annotations": ANNOTATIONS},
        "type": "Opaque",
        "data": secret_data(entry),
    }
    status, answer = request("POST", path, body)
    if status == 409:  # created meanwhile (a parallel sync): keep that one
        return f"secret/{name} was just created by another run: left unchanged"
    if status != 201:
        raise RuntimeError(f"creating secret/{name}: HTTP {status} {answer.get('message', '')}")
    return f"secret/{name} created"


def run(plan: list[dict[str, Any]], namespace: str, request: Request) -> list[str]:
    return [ensure(request, namespace, entry) for entry in plan]


def main() -> int:
    try:
        for line in run(json.loads(os.environ["PLAN"]), os.environ["POD_NAMESPACE"], api_request):
            print(line, flush=True)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
