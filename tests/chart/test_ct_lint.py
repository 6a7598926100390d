"""What `ct lint` checks besides `helm lint` (see test_lint.py), performed here because `ct` cannot be
installed: yamllint with lintconf.yaml, Chart.yaml against chart_schema.yaml with yamale, the version
(semver, bumped against the target branch) and the maintainers. ct.yaml is the single source of its settings
so `ct lint` elsewhere and this module agree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yamale
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.chart.rendering import CHART_DIR, REPO_ROOT, values_files

CT_CONFIG = REPO_ROOT / "ct.yaml"
CHART_YAML = CHART_DIR / "Chart.yaml"

#: semver.org's regular expression (what ct and helm mean by a chart version).
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

#: Files ct's yamllint step covers: Chart.yaml, values.yaml and every values file of the chart.
YAML_LINTED = [CHART_YAML, CHART_DIR / "values.yaml", *values_files()]


@pytest.fixture(scope="module")
def ct_config() -> dict[str, Any]:
    assert CT_CONFIG.is_file(), f"{CT_CONFIG} is missing: chart-testing needs it"
    return yaml.safe_load(CT_CONFIG.read_text()) or {}


def ct_path(ct_config: dict[str, Any], key: str, default: str) -> Path:
    """A config file ct reads: the path ct.yaml names, else ct's default name in the working directory."""
    return REPO_ROOT / str(ct_config.get(key, default))


@pytest.fixture(scope="module")
def chart_yaml() -> dict[str, Any]:
    chart: dict[str, Any] = yaml.safe_load(CHART_YAML.read_text())
    return chart


def parse_semver(version: str) -> tuple[int, int, int, str]:
    match = SEMVER.match(version)
    assert match, f"{version!r} is not a semantic version"
    major, minor, patch, prerelease, _build = match.groups()
    return int(major), int(minor), int(patch), prerelease or ""


def semver_greater(new: str, old: str) -> bool:
    """new > old by semver precedence (a release outranks its prereleases; prereleases compared as text,
    enough for the chart's own versions)."""
    *new_core, new_pre = parse_semver(new)
    *old_core, old_pre = parse_semver(old)
    if new_core != old_core:
        return new_core > old_core
    if new_pre == old_pre:
        return False
    return new_pre == "" or (old_pre != "" and new_pre > old_pre)


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def test_ct_config_points_at_this_chart(ct_config: dict[str, Any]) -> None:
    assert ct_config["chart-dirs"] == [str(CHART_DIR.parent.relative_to(REPO_ROOT))]
    assert ct_config["target-branch"] == "main", "the branch the version check compares with"
    # The maintainers check asks GitHub whether each maintainer is a user: impossible offline.
    assert ct_config["validate-maintainers"] is False
    # Written out, not left to ct's default: removing the line must fail here.
    assert ct_config["check-version-increment"] is True


@pytest.mark.parametrize("path", YAML_LINTED, ids=lambda p: str(p.relative_to(CHART_DIR)))
def test_yamllint_with_ct_lintconf(ct_config: dict[str, Any], path: Path) -> None:
    lintconf = ct_path(ct_config, "lint-conf", "lintconf.yaml")
    assert lintconf.is_file(), f"{lintconf} is missing"
    config = YamlLintConfig(file=str(lintconf))
    problems = list(linter.run(path.read_text(), config, str(path)))
    # ct runs plain yamllint: errors fail, warnings are reported only.
    errors = [f"{path.name}:{p.line}:{p.column} {p.desc} ({p.rule})" for p in problems if p.level == "error"]
    assert not errors, "\n".join(errors)


def test_chart_yaml_matches_ct_chart_schema(ct_config: dict[str, Any]) -> None:
    schema_path = ct_path(ct_config, "chart-yaml-schema", "chart_schema.yaml")
    assert schema_path.is_file(), f"{schema_path} is missing"
    schema = yamale.make_schema(str(schema_path))
    # ct runs `yamale --schema chart_schema.yaml Chart.yaml`, strict by default: unknown keys fail.
    yamale.validate(schema, yamale.make_data(str(CHART_YAML)), strict=True)


def test_chart_version_is_semver(chart_yaml: dict[str, Any]) -> None:
    parse_semver(str(chart_yaml["version"]))


def test_app_version_matches_package_version(chart_yaml: dict[str, Any]) -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    package_version = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert package_version, "pyproject.toml has no version"
    assert str(chart_yaml["appVersion"]) == package_version.group(1)


def test_maintainers_present(chart_yaml: dict[str, Any]) -> None:
    maintainers = chart_yaml.get("maintainers") or []
    assert maintainers, "Chart.yaml lists no maintainers"
    for maintainer in maintainers:
        assert str(maintainer.get("name", "")).strip(), f"maintainer without a name: {maintainer}"


def test_chart_version_bumped_against_target_branch(
    ct_config: dict[str, Any], chart_yaml: dict[str, Any]
) -> None:
    """chart-testing's version-increment check: when the chart changed since the merge base with the
    target branch, its version must be greater than the version there."""
    target = f"{ct_config.get('remote', 'origin')}/{ct_config['target-branch']}"
    if git("rev-parse", "--verify", "--quiet", f"{target}^{{commit}}").returncode != 0:
        pytest.skip(f"no ref {target} in this clone (no remote or not fetched): the version check needs it")
    merge_base = git("merge-base", "HEAD", target)
    assert merge_base.returncode == 0, merge_base.stderr
    base = merge_base.stdout.strip()
    chart_rel = str(CHART_DIR.relative_to(REPO_ROOT))
    changed = git("diff", "--name-only", base, "--", chart_rel).stdout.split()
    untracked = git("ls-files", "--others", "--exclude-standard", "--", chart_rel).stdout.split()
    if not changed and not untracked:
        return  # unchanged chart: ct does not require a bump
    old_chart = git("show", f"{base}:{chart_rel}/Chart.yaml")
    if old_chart.returncode != 0:
        return  # the chart is new on this branch: any version is an increment
    old_version = str(yaml.safe_load(old_chart.stdout)["version"])
    new_version = str(chart_yaml["version"])
    assert semver_greater(new_version, old_version), (
        f"{chart_rel} changed since {target} ({len(changed) + len(untracked)} files) but its version "
        f"{new_version} is not greater than {old_version}: bump Chart.yaml's version"
    )


@pytest.mark.parametrize(
    ("new", "old", "greater"),
    [
        ("0.2.0", "0.1.9", True),
        ("1.0.0", "1.0.0-rc.1", True),
        ("0.1.0", "0.1.0", False),
        ("0.1.0", "0.2.0", False),
    ],
)
def test_semver_comparison_used_by_the_version_check(new: str, old: str, greater: bool) -> None:
    assert semver_greater(new, old) is greater
