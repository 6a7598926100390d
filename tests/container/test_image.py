"""The image docker/Dockerfile builds: what the chart relies on, and the build's CA secret in no layer."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.container.engine import Docker
from tests.container.image import Build
from tests.container.release import CONTAINER_TIMEOUT

pytestmark = [pytest.mark.container, pytest.mark.timeout(CONTAINER_TIMEOUT)]


def test_image_runs_taskqueue_under_tini_as_10001_on_bookworm_python_311(
    docker: Docker, image: Build
) -> None:
    config = json.loads(docker.run("image", "inspect", "--format", "{{json .Config}}", image.ref).stdout)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["tini", "--", "taskqueue"] and config["Cmd"] == ["worker"]
    assert config["WorkingDir"] == "/app"
    # What the base brings, whichever it was (the official image or docker/debian-base.sh's stand-in).
    script = ("import platform, sys; print(sys.version_info[:2] == (3, 11), sys.prefix, "
              "platform.freedesktop_os_release()['VERSION_CODENAME'])")
    out = docker.run("run", "--rm", "--network", "none", "--read-only", "--entrypoint", "python", image.ref,
                     "-c", script).stdout.split()
    assert out == ["True", "/opt/venv", "bookworm"], out
    ids = docker.run("run", "--rm", "--network", "none", "--read-only", image.ref, "--version").stdout
    assert ids.strip() == "taskqueue, version 0.1.0"


def test_the_ca_bundle_secret_is_in_no_layer(docker: Docker, image: Build, tmp_path: Path) -> None:
    if image.ca_bundle is None:
        pytest.fail("the build had no CA bundle to pass as a secret (/etc/ssl/certs/ca-certificates.crt)")
    secret = image.ca_bundle.read_bytes()
    digest, size = hashlib.sha256(secret).hexdigest(), len(secret)
    archive = tmp_path / "image.tar"
    docker.run("save", "--output", str(archive), image.ref, timeout=600)
    found, layers = [], 0
    with tarfile.open(archive) as saved:
        for member in saved.getmembers():
            if not member.name.endswith("layer.tar"):
                continue
            layers += 1
            layer_file = saved.extractfile(member)
            assert layer_file is not None
            with tarfile.open(fileobj=io.BytesIO(layer_file.read())) as layer:
                for entry in layer.getmembers():
                    if "run/secrets" in entry.name:
                        found.append(f"{member.name}: {entry.name}")
                    elif entry.isfile() and entry.size == size:
                        content = layer.extractfile(entry)
                        if content is not None and hashlib.sha256(content.read()).hexdigest() == digest:
                            found.append(f"{member.name}: {entry.name}")
    assert layers >= 3
    assert found == [], f"the build's CA bundle is stored in the image: {found}"
