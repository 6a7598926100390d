"""The Docker engine the container tests and the image benchmark use: one that already answers, else a
``dockerd`` of their own, stopped by PID when they end.

A dockerd of our own gets its own data-root, exec-root, pidfile, socket and containerd namespaces, so it
collides with nothing, and runs with ``--bridge=none --iptables=false``: it never touches the host's
network configuration (this sandbox has no bridge to give it anyway). Every container then runs with
``--network host`` and builds with ``--network host``, so all traffic stays on loopback.

Its data-root is ``.tools/docker/data`` (the base image and the build cache survive the session) while a
lock on it is ours; a second session running at the same time gets a temporary one instead.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from taskqueue.children import Child, start_child

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = REPO_ROOT / ".tools" / "docker"
#: Debian's docker.io client: it builds with DOCKER_BUILDKIT=1 without the buildx plugin, which a newer
#: client on PATH may lack (it then refuses to build).
DEBIAN_CLIENT = Path("/usr/bin/docker")
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
#: Seconds a dockerd of ours may take to answer, and to stop.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0


class EngineUnavailable(RuntimeError):
    """No engine answers and none could be started: the message says why."""


def docker_client() -> str:
    chosen = os.environ.get("DOCKER")
    if chosen:
        return chosen
    if DEBIAN_CLIENT.exists():
        return str(DEBIAN_CLIENT)
    found = shutil.which("docker")
    if found is None:
        raise EngineUnavailable("no docker client: run scripts/setup-docker.sh as root (installs docker.io)")
    return found


@dataclass
class Docker:
    """The docker CLI against one engine (``host``, a DOCKER_HOST value)."""

    client: str
    host: str

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}
        env.update(extra or {})
        return env

    def run(
        self, *args: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.client, *args], env=self.env(env), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args[:3])} ... exited {done.returncode}: "
                                 f"{done.stderr.strip() or done.stdout.strip()}")
        return done

    def answers(self) -> bool:
        try:
            done = self.run("version", "--format", "{{.Server.Version}}", timeout=20, check=False)
            return done.returncode == 0
        except subprocess.TimeoutExpired:
            return False


@dataclass
class Engine:
    """An answering engine; ``daemon`` is set when this session started it (and so must stop it)."""

    docker: Docker
    daemon: Child | None = None
    data_root: Path | None = None
    exec_root: Path | None = None
    log: Path | None = None
    temporary_data_root: bool = False
    lock: IO[bytes] | None = field(default=None, repr=False)

    @property
    def ours(self) -> bool:
        return self.daemon is not None

    def stop(self) -> int | None:
        """Stop the dockerd this session started (by PID, then its process group), release the data-root;
        an engine that was already running is left alone. Returns dockerd's exit code."""
        code = None
        if self.daemon is not None:
            code = self.daemon.stop()
            self.daemon = None
        for root in (self.exec_root, self.data_root if self.temporary_data_root else None):
            if root is not None:
                unmount_under(root)
        if self.exec_root is not None:
            shutil.rmtree(self.exec_root, ignore_errors=True)
        if self.temporary_data_root and self.data_root is not None:
            shutil.rmtree(self.data_root, ignore_errors=True)
        if self.lock is not None:
            self.lock.close()  # releases the flock
            self.lock = None
        return code


def unmount_under(root: Path) -> None:
    """Unmount what a stopped dockerd left mounted under its own directory (its network namespace file
    stays bind-mounted in the exec-root): deepest first, nothing outside ``root``."""
    prefix = f"{root.resolve()}/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, timeout=30, check=False)


def _lock_state_dir() -> IO[bytes] | None:
    """The lock on .tools/docker/data, or None when another session holds it."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    handle = (STATE_DIR / "lock").open("wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def dockerd_command(data_root: Path, exec_root: Path) -> list[str]:
    dockerd = shutil.which("dockerd", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin")
    if dockerd is None:
        raise EngineUnavailable("dockerd is not installed: run scripts/setup-docker.sh as root (docker.io)")
    namespace = f"taskqueue-tests-{uuid.uuid4().hex[:8]}"  # letters, digits and single dashes only
    return [
        dockerd,
        f"--data-root={data_root}",
        f"--exec-root={exec_root}",
        f"--pidfile={exec_root / 'docker.pid'}",
        f"--host=unix://{exec_root / 'docker.sock'}",
        # No bridge, no iptables rules: the host's network stays as it is; containers use --network host.
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        # Its own containerd namespaces, should it find and share a system containerd.
        f"--containerd-namespace={namespace}",
        f"--containerd-plugins-namespace={namespace}-plugins",
    ]


def start_dockerd(log_dir: Path) -> Engine:
    """A dockerd of our own (root only), answering on its own socket."""
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers and dockerd needs root to start one")
    lock = _lock_state_dir()
    if lock is not None:
        data_root, temporary = STATE_DIR / "data", False
    else:  # another session uses .tools/docker/data: a throw-away data-root (a cold build)
        data_root, temporary = Path(tempfile.mkdtemp(prefix="taskqueue-docker-data-")), True
    # Short: containerd's socket lives under the exec-root, and unix socket paths are limited to 108 bytes.
    exec_root = Path(tempfile.mkdtemp(prefix="tq-dockerd-", dir="/tmp"))
    log = log_dir / "dockerd.log"
    engine = Engine(Docker(docker_client(), f"unix://{exec_root / 'docker.sock'}"), None, data_root,
                    exec_root, log, temporary, lock)
    try:
        engine.daemon = start_child("dockerd", dockerd_command(data_root, exec_root), dict(os.environ),
                                    output=log, stop_timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not engine.docker.answers():
            if not engine.daemon.alive():
                raise EngineUnavailable(f"dockerd exited with {engine.daemon.process.returncode}:\n"
                                        f"{tail(log)}")
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"dockerd did not answer within {START_TIMEOUT:.0f}s:\n{tail(log)}")
            time.sleep(0.5)
    except BaseException:
        engine.stop()
        raise
    return engine


def find_or_start_engine(log_dir: Path) -> Engine:
    """The engine DOCKER_HOST (or the default socket) names if it answers; else a dockerd of our own."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
    existing = Docker(docker_client(), host)
    if existing.answers():
        return Engine(existing)
    return start_dockerd(log_dir)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_setup_docker() -> subprocess.CompletedProcess[str]:
    """scripts/setup-docker.sh: installs what is missing (root with apt), otherwise says what to install."""
    return subprocess.run([str(REPO_ROOT / "scripts" / "setup-docker.sh")], capture_output=True, text=True,
                          timeout=900, check=False)


def image_size(docker: Docker, ref: str) -> int:
    return int(docker.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


def remove_containers(docker: Docker, ids: Sequence[str]) -> None:
    """Remove the given containers (ours, by id) whatever their state."""
    if ids:
        docker.run("rm", "--force", "--volumes", *ids, check=False, timeout=120)
