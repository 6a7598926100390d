"""A rendered pod, run as `docker run`: the glue between the chart's pod specs and the Docker engine.

Podman's ``kube play`` would be the tool for this, but Debian bookworm's podman 4.3 does not run these pods
as the kubelet would: an emptyDir becomes one named volume on disk that every pod naming it "tmp" shares
(all of ours do: their heartbeat files would collide), probes become systemd timers (no systemd here),
terminationGracePeriodSeconds is ignored (10 s stop timeout), pod-level securityContext is ignored, Secrets
must be converted to podman secrets by hand, and its default ulimits exceed this machine's (every container
fails to start until they are overridden). So each field of the pod spec is translated here, and a field
this module does not know makes it fail rather than silently run something else than the chart says.

What a Kubernetes node would provide is emulated as follows: the broker Service name resolves to 127.0.0.1
(``--add-host``; containers share the host's network namespace, ``--network host``, so all traffic stays on
loopback), each ``secretKeyRef`` is read from the rendered Secrets and handed over through the docker
client's environment (``-e NAME``: never on a command line), an emptyDir is a tmpfs of its sizeLimit, and
probes are executed by the tests with ``docker exec`` (see :meth:`Container.probe`).
"""

from __future__ import annotations

import base64
import re
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.container.engine import Docker, remove_containers

#: Pod spec fields applied to the container.
POD_FIELDS = {"containers", "securityContext", "volumes", "terminationGracePeriodSeconds", "restartPolicy"}
#: Pod spec fields with nothing to apply on one host, each for a stated reason.
POD_FIELDS_WITHOUT_EFFECT = {
    "serviceAccountName": "no API server to talk to (and the token is not mounted: checked below)",
    "imagePullSecrets": "nothing is pulled (--pull never)",
    "priorityClassName": "scheduling", "nodeSelector": "scheduling", "tolerations": "scheduling",
    "affinity": "scheduling", "topologySpreadConstraints": "scheduling",
}
CONTAINER_FIELDS = {"name", "image", "command", "args", "env", "securityContext", "resources", "volumeMounts"}
#: Run by the tests themselves, as the kubelet would: ``docker exec`` of the command.
PROBE_FIELDS = ("startupProbe", "livenessProbe", "readinessProbe")
CONTAINER_FIELDS_WITHOUT_EFFECT = {
    "imagePullPolicy": "nothing is pulled (--pull never)",
    "ports": "host network: a container port is the host's port",
}
SECURITY_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                   "allowPrivilegeEscalation", "privileged", "capabilities", "seccompProfile", "fsGroup",
                   "supplementalGroups"}

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
    "T": Decimal(10**12), "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}


class UnsupportedSpec(AssertionError):
    """A pod spec field this glue cannot apply faithfully."""


def quantity(value: str | int | float) -> Decimal:
    """A Kubernetes resource quantity ("512Mi", "500m", "1") as a number."""
    match = _QUANTITY.match(str(value))
    if match is None or match[2] not in _SUFFIXES:
        raise UnsupportedSpec(f"resource quantity {value!r}")
    return Decimal(match[1]) * _SUFFIXES[match[2]]


def decoded_secrets(objects: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """The rendered Secrets' data by name, decoded (``data`` is base64, ``stringData`` is not)."""
    secrets: dict[str, dict[str, str]] = {}
    for obj in objects:
        if obj.get("kind") == "Secret":
            data = {key: base64.b64decode(value).decode() for key, value in (obj.get("data") or {}).items()}
            data.update(obj.get("stringData") or {})
            secrets[obj["metadata"]["name"]] = data
    return secrets


def resolve_env(container: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet would set it (later duplicates win)."""
    if container.get("envFrom"):
        raise UnsupportedSpec("envFrom")
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        name = entry["name"]
        if "value" in entry:
            value = str(entry["value"])
            if "$(" in value:
                raise UnsupportedSpec(f"env {name}: $(VAR) references")
        elif set(entry.get("valueFrom", {})) == {"secretKeyRef"}:
            ref = entry["valueFrom"]["secretKeyRef"]
            secret = secrets.get(ref["name"], {})
            if ref["key"] not in secret:
                if ref.get("optional"):
                    continue
                raise AssertionError(f"env {name}: Secret {ref['name']} has no key {ref['key']} in the "
                                     "render (the kubelet would not start the container)")
            value = secret[ref["key"]]
        else:
            raise UnsupportedSpec(f"env {name}: {entry}")
        env[name] = value
    return env


def security_flags(pod: Mapping[str, Any], container: Mapping[str, Any], image_user: str) -> list[str]:
    """--user, --group-add, --read-only, capabilities, no-new-privileges from the security contexts."""
    pod_ctx = pod.get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    for key in (*pod_ctx, *ctx):
        if key not in SECURITY_FIELDS:
            raise UnsupportedSpec(f"securityContext.{key}")
    merged = {**pod_ctx, **ctx}  # the container's settings win over the pod's
    flags: list[str] = []
    uid, gid = merged.get("runAsUser"), merged.get("runAsGroup")
    if gid is not None and uid is None:
        raise UnsupportedSpec("runAsGroup without runAsUser")
    if uid is not None:
        flags += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
    if merged.get("runAsNonRoot"):
        effective = str(uid) if uid is not None else image_user.partition(":")[0]
        # The kubelet refuses to start a container that would run as root, or as a user name it cannot verify.
        if not effective.isdigit() or int(effective) == 0:
            raise AssertionError(f"runAsNonRoot, but the container would run as {effective!r}")
    for group in [pod_ctx.get("fsGroup"), *(pod_ctx.get("supplementalGroups") or [])]:
        if group is not None:
            flags += ["--group-add", str(group)]
    if merged.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if merged.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    if merged.get("privileged"):
        flags.append("--privileged")
    capabilities = merged.get("capabilities") or {}
    for cap in capabilities.get("drop") or []:
        flags += ["--cap-drop", cap]
    for cap in capabilities.get("add") or []:
        flags += ["--cap-add", cap]
    seccomp = (merged.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        flags += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":  # RuntimeDefault: the engine's default profile, what docker applies
        raise UnsupportedSpec(f"seccompProfile {seccomp}")
    return flags


def resource_flags(container: Mapping[str, Any]) -> list[str]:
    """Memory and CPU limits as the kubelet sets them on cgroups (no swap; CPU shares from the request)."""
    resources = container.get("resources") or {}
    flags: list[str] = []
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    for key in (*limits, *requests):
        if key not in ("cpu", "memory"):
            raise UnsupportedSpec(f"resources: {key}")
    if "memory" in limits:
        memory = int(quantity(limits["memory"]))
        flags += ["--memory", str(memory), "--memory-swap", str(memory)]
    if "cpu" in limits:
        flags += ["--cpus", str(quantity(limits["cpu"]))]
    if "cpu" in requests:
        flags += ["--cpu-shares", str(max(2, int(quantity(requests["cpu"]) * 1024)))]
    return flags


def volume_flags(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    """Each mounted emptyDir as a tmpfs limited to its sizeLimit, group-owned by the pod's fsGroup."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes") or []}
    fs_group = (pod.get("securityContext") or {}).get("fsGroup")
    flags: list[str] = []
    for mount in container.get("volumeMounts") or []:
        if set(mount) - {"name", "mountPath", "readOnly"}:
            raise UnsupportedSpec(f"volumeMount {mount}")
        volume = volumes[mount["name"]]
        if set(volume) != {"name", "emptyDir"}:
            raise UnsupportedSpec(f"volume {volume}")
        # exec: docker's tmpfs default is noexec, a kubelet's emptyDir is not.
        options = ["ro" if mount.get("readOnly") else "rw", "nosuid", "nodev", "exec"]
        size = (volume["emptyDir"] or {}).get("sizeLimit")
        if size is not None:
            options.append(f"size={int(quantity(size))}")
        # World-writable like the kubelet's directory (0777, or 2777 group-owned by fsGroup); the engine
        # makes a tmpfs root 1777 whatever mode is asked for, so that is what is asked for.
        options += ["mode=1777"] + ([f"gid={fs_group}"] if fs_group is not None else [])
        flags += ["--tmpfs", f"{mount['mountPath']}:{','.join(options)}"]
    return flags


def command_args(container: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(docker run flags, arguments after the image): command replaces the entrypoint (and the image's
    CMD), args replace the CMD, as in Kubernetes."""
    command, args = container.get("command"), container.get("args")
    if command:
        return ["--entrypoint", command[0]], [*command[1:], *(args or [])]
    return [], list(args or [])


@dataclass(frozen=True)
class PodContainer:
    """One container of a rendered pod (Deployment template or bare Pod), ready to run."""

    component: str
    pod: Mapping[str, Any]
    spec: Mapping[str, Any]

    @property
    def grace_seconds(self) -> int:
        return int(self.pod.get("terminationGracePeriodSeconds", 30))

    def probe(self, kind: str) -> Mapping[str, Any] | None:
        probe: Mapping[str, Any] | None = self.spec.get(kind)
        return probe

    def check_fields(self) -> None:
        for key in self.pod:
            if key not in POD_FIELDS and key not in POD_FIELDS_WITHOUT_EFFECT and key not in (
                    "automountServiceAccountToken", "enableServiceLinks"):
                raise UnsupportedSpec(f"pod field {key}")
        if self.pod.get("automountServiceAccountToken", True):
            raise UnsupportedSpec("automountServiceAccountToken: no token to mount")
        if self.pod.get("enableServiceLinks", True):
            raise UnsupportedSpec("enableServiceLinks: no Service variables to inject")
        if self.pod.get("initContainers") or len(self.pod["containers"]) != 1:
            raise UnsupportedSpec("one container per pod, no init containers")
        for key in self.spec:
            known = key in CONTAINER_FIELDS or key in PROBE_FIELDS or key in CONTAINER_FIELDS_WITHOUT_EFFECT
            if not known:
                raise UnsupportedSpec(f"container field {key}")
        for kind in PROBE_FIELDS:
            probe = self.spec.get(kind)
            if probe is not None and set(probe) - {"exec", "initialDelaySeconds", "periodSeconds",
                                                   "timeoutSeconds", "failureThreshold", "successThreshold"}:
                raise UnsupportedSpec(f"{kind}: only exec probes")


def pod_container(obj: Mapping[str, Any]) -> PodContainer:
    pod = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    labels = obj["metadata"].get("labels") or {}
    component = labels.get("app.kubernetes.io/component", obj["metadata"]["name"])
    return PodContainer(component, pod, pod["containers"][0])


@dataclass
class Container:
    """A running (or exited) container of ours."""

    docker: Docker
    id: str
    name: str
    source: PodContainer
    env: dict[str, str] = field(repr=False)

    def inspect(self) -> dict[str, Any]:
        import json

        data: list[dict[str, Any]] = json.loads(self.docker.run("inspect", self.id).stdout)
        return data[0]

    def running(self) -> bool:
        return bool(self.inspect()["State"]["Running"])

    def logs(self) -> str:
        done = self.docker.run("logs", self.id, check=False, timeout=60)
        return done.stdout + done.stderr

    def exec(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """A command inside the container, as its user with its environment (what a kubelet exec does)."""
        try:
            return self.docker.run("exec", self.id, *command, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(list(command), 124, "", f"timed out after {timeout}s")

    def probe(self, kind: str) -> subprocess.CompletedProcess[str]:
        """Run the rendered probe ``kind`` once, within its timeoutSeconds: exit 0 is success."""
        probe = self.source.probe(kind)
        assert probe is not None, f"{self.source.component} declares no {kind}"
        return self.exec(*probe["exec"]["command"], timeout=float(probe.get("timeoutSeconds", 1)))

    def wait_probe(self, kind: str) -> subprocess.CompletedProcess[str]:
        """Like the kubelet: the probe must pass within initialDelaySeconds + failureThreshold x
        periodSeconds (polled more often than periodSeconds, which only finds the pass sooner)."""
        probe = self.source.probe(kind)
        assert probe is not None
        deadline = time.monotonic() + probe.get("initialDelaySeconds", 0) + (
            probe.get("failureThreshold", 3) * probe.get("periodSeconds", 10))
        while True:
            result = self.probe(kind)
            if result.returncode == 0 or time.monotonic() > deadline:
                return result
            assert self.running(), f"{self.name} exited:\n{self.logs()[-3000:]}"
            time.sleep(min(2.0, probe.get("periodSeconds", 10)))

    def stop(self, grace: int | None = None) -> tuple[int, float]:
        """``docker stop -t <grace>`` (SIGTERM, SIGKILL after the grace period, as the kubelet does):
        (exit code, seconds it took)."""
        grace = self.source.grace_seconds if grace is None else grace
        started = time.monotonic()
        self.docker.run("stop", "--time", str(grace), self.id, timeout=grace + 60)
        seconds = time.monotonic() - started
        return int(self.inspect()["State"]["ExitCode"]), seconds

    def wait(self, timeout: float) -> int:
        return int(self.docker.run("wait", self.id, timeout=timeout).stdout.strip())

    def main_pid(self) -> int:
        """Host PID of the container's PID 1 (tini)."""
        return int(self.inspect()["State"]["Pid"])


@dataclass
class Pods:
    """Runs rendered pods as containers and removes every container it ran (by id) at ``remove_all``."""

    docker: Docker
    image_user: str
    secrets: dict[str, dict[str, str]]
    #: Host names a node's DNS would resolve: the broker Service, pointing at the host's loopback.
    service_hosts: Sequence[str]
    started: list[Container] = field(default_factory=list)

    def run(self, obj: Mapping[str, Any], *, env: Mapping[str, str] | None = None) -> Container:
        """Start the pod ``obj`` (a Deployment's template or a Pod); ``env`` overrides rendered variables
        (benchmarks only: the tests run the rendered spec unchanged)."""
        source = pod_container(obj)
        source.check_fields()
        resolved = {**resolve_env(source.spec, self.secrets), **(env or {})}
        # A pod's hostname is its name (a Deployment's pods: the name plus a random suffix). Distinct
        # hostnames keep Celery's node names (celery.<pid>@<hostname>) distinct, as on a cluster.
        suffix = uuid.uuid4().hex[:5]
        pod_name = obj["metadata"]["name"] if obj["kind"] == "Pod" else f"{obj['metadata']['name']}-{suffix}"
        name = f"{pod_name}-{suffix}" if obj["kind"] == "Pod" else pod_name
        entrypoint, arguments = command_args(source.spec)
        flags = [
            "run", "--detach", "--name", name, "--hostname", pod_name[:63], "--pull", "never",
            "--network", "host", "--restart", "no",
            "--stop-signal", "SIGTERM", "--stop-timeout", str(source.grace_seconds),
            *[flag for host in self.service_hosts for flag in ("--add-host", f"{host}:127.0.0.1")],
            *security_flags(source.pod, source.spec, self.image_user),
            *resource_flags(source.spec),
            *volume_flags(source.pod, source.spec),
            # Values come from the docker client's own environment: no secret on a command line.
            *[flag for variable in resolved for flag in ("--env", variable)],
            *entrypoint,
            source.spec["image"],
            *arguments,
        ]
        container_id = self.docker.run(*flags, env=resolved, timeout=120).stdout.strip()
        container = Container(self.docker, container_id, name, source, resolved)
        self.started.append(container)
        return container

    def remove_all(self) -> None:
        remove_containers(self.docker, [container.id for container in self.started])
        self.started.clear()
