"""promtool, Prometheus's rule checker and rule unit-test runner: the binary scripts/build-promtool.sh builds
from the Go module github.com/prometheus/prometheus (scripts/test.sh builds it before pytest), or the one
the PROMTOOL environment variable names."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-promtool.sh"
#: Where the build script puts it: .tools/promtool/prometheus-<module version>/bin/promtool.
BUILT = REPO_ROOT / ".tools" / "promtool"


def find_promtool() -> Path | None:
    """PROMTOOL when set (it must then be executable), else the newest promtool the build script made."""
    named = os.environ.get("PROMTOOL")
    if named:
        path = Path(named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"PROMTOOL={named} is not an executable file")
        return path
    built = sorted(BUILT.glob("prometheus-*/bin/promtool"))
    return built[-1] if built else None


#: Why the promtool tests skip when there is no promtool.
MISSING = f"promtool is not built and PROMTOOL is unset: run {BUILD_SCRIPT.relative_to(REPO_ROOT)}"


def run_promtool(promtool: Path, *args: str, cwd: Path | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS``; returns the completed process (the caller asserts on its code and output)."""
    return subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
