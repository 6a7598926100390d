"""The project image, built from docker/Dockerfile the way the README says, on a base that needs no pull."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.container.engine import REPO_ROOT, Docker

DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
BASE_SCRIPT = REPO_ROOT / "docker" / "debian-base.sh"
#: The Dockerfile's default base: used when the engine already has it (nothing is ever pulled).
OFFICIAL_BASE = "python:3.11.13-slim-bookworm"
IMAGE_REPOSITORY = "celery-rabbitmq"
IMAGE_TAG = "container-test"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
#: The CA bundle handed to the build as the `ca` secret (this machine's proxy CA is in it).
CA_CANDIDATES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "PIP_CERT")
DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class Build:
    ref: str
    base: str
    seconds: float
    output: str
    ca_bundle: Path | None


def ca_bundle() -> Path | None:
    for name in CA_CANDIDATES:
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return DEFAULT_CA if DEFAULT_CA.is_file() else None


def base_image(docker: Docker) -> str:
    """TASKQUEUE_BASE_IMAGE, else the official base if the engine has it, else the Debian-made stand-in
    (built once by docker/debian-base.sh, then imported from its cached archive)."""
    chosen = os.environ.get("TASKQUEUE_BASE_IMAGE")
    if chosen:
        return chosen
    if docker.run("image", "inspect", OFFICIAL_BASE, check=False).returncode == 0:
        return OFFICIAL_BASE
    done = subprocess.run([str(BASE_SCRIPT)], env=docker.env({"DOCKER": docker.client}), capture_output=True,
                          text=True, timeout=1200, check=False)
    if done.returncode != 0:
        raise AssertionError(f"docker/debian-base.sh exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def build_image(
    docker: Docker, ref: str = IMAGE, base: str | None = None, *, no_cache: bool = False
) -> Build:
    """`docker build` of the repository with the README's command: the base as a build argument, the CA
    bundle as a build secret, --network host (an engine of ours has no bridge)."""
    base = base or base_image(docker)
    ca = ca_bundle()
    # No REVISION build argument: a new value per commit would invalidate every layer after it.
    args = ["build", "--network", "host", "--progress", "plain", "--file", str(DOCKERFILE), "--tag", ref,
            "--build-arg", f"BASE_IMAGE={base}"]
    if no_cache:
        args.append("--no-cache")
    if ca is not None:
        args += ["--secret", f"id=ca,src={ca}"]
    started = time.monotonic()
    done = docker.run(*args, str(REPO_ROOT), timeout=1800, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise AssertionError(f"docker build exited {done.returncode}:\n{done.stderr[-5000:]}")
    return Build(ref, base, seconds, done.stderr, ca)

