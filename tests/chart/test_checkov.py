"""Policy: checkov on the rendered manifests of the default and the prod values. No failed check; each skip
lives in .checkov.yaml at the top of the repo with its reason next to it (the one place skips are allowed)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.rendering import (
    DEFAULT_VALUES,
    PROD_VALUES_FILE,
    REPO_ROOT,
    VENV_BIN,
    RenderFn,
    ValuesSet,
    file_values_set,
)

CHECKOV = VENV_BIN / "checkov"
CHECKOV_CONFIG = REPO_ROOT / ".checkov.yaml"
POLICY_VALUES_SETS = [DEFAULT_VALUES, file_values_set(PROD_VALUES_FILE)]
CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")


def run_checkov(manifest_file: Path) -> dict[str, Any]:
    command = [str(CHECKOV), "--framework", "kubernetes", "-f", str(manifest_file), "-o", "json", "--quiet"]
    # No network here or in CI: --skip-download stops checkov fetching guidelines from Prisma Cloud.
    command.append("--skip-download")
    if CHECKOV_CONFIG.is_file():
        command += ["--config-file", str(CHECKOV_CONFIG)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode in (0, 1), f"checkov crashed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    output = json.loads(proc.stdout)
    reports = output if isinstance(output, list) else [output]
    kubernetes: list[dict[str, Any]] = [r for r in reports if r.get("check_type") == "kubernetes"]
    assert kubernetes, f"checkov reported no kubernetes results for {manifest_file}: {proc.stdout[:2000]}"
    return kubernetes[0]


@pytest.fixture(scope="module", params=POLICY_VALUES_SETS, ids=str)
def checkov_report(
    request: pytest.FixtureRequest, render: RenderFn, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ValuesSet, dict[str, Any]]:
    """checkov's report for one values set: rendered and scanned once per module."""
    if not CHECKOV.exists():
        pytest.skip(f"{CHECKOV} is missing: run scripts/setup.sh")
    values_set: ValuesSet = request.param
    if values_set.files and not values_set.files[0].is_file():
        pytest.fail(f"{values_set.files[0]} is missing")
    manifest_file = tmp_path_factory.mktemp("checkov") / "manifest.yaml"
    manifest_file.write_text(render(values_set).text)
    return values_set, run_checkov(manifest_file)


def test_checkov_has_no_failed_check(checkov_report: tuple[ValuesSet, dict[str, Any]]) -> None:
    values_set, report = checkov_report
    summary = report["summary"]
    assert summary["resource_count"] > 0 and summary["passed"] > 0, f"checkov scanned nothing: {summary}"
    assert summary["parsing_errors"] == 0, summary
    failed = report["results"]["failed_checks"]
    lines = sorted({f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed})
    assert not lines, f"[{values_set}] checkov failed {len(failed)} checks:\n" + "\n".join(lines)


#: Skipped checks that hold for every pod but one: the check ids, and the only object allowed to fail them.
NARROW_SKIPS = {"CKV_K8S_8": "test-add", "CKV_K8S_9": "test-add"}  # probes: the one-shot helm test pod


@pytest.mark.parametrize("values_set", POLICY_VALUES_SETS, ids=str)
def test_probe_skips_cover_only_the_helm_test_pod(
    values_set: ValuesSet, render: RenderFn, tmp_path: Path
) -> None:
    """Run the skipped probe checks anyway: only the helm test pod may fail them (worker, producer, Flower
    and RabbitMQ all have liveness and readiness probes), so the skip hides nothing else."""
    if not CHECKOV.exists():
        pytest.skip(f"{CHECKOV} is missing: run scripts/setup.sh")
    manifest_file = tmp_path / "manifest.yaml"
    manifest_file.write_text(render(values_set).text)
    command = [str(CHECKOV), "--framework", "kubernetes", "-f", str(manifest_file), "-o", "json", "--quiet",
               "--skip-download", "--check", ",".join(NARROW_SKIPS)]
    # cwd: away from the repo's .checkov.yaml, which skips exactly these checks.
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode in (0, 1), f"checkov crashed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    output = json.loads(proc.stdout)
    report = next(r for r in (output if isinstance(output, list) else [output])
                  if r.get("check_type") == "kubernetes")
    failed = {(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]}
    assert failed, "checkov found no pod without probes: is the helm test pod still rendered?"
    others = sorted((check, resource) for check, resource in failed
                    if not resource.endswith(f"-{NARROW_SKIPS[check]}"))
    assert not others, f"[{values_set}] skipped probe checks would hide: {others}"


def test_rendered_objects_carry_no_checkov_skip(render: RenderFn) -> None:
    """Skips live in .checkov.yaml only, not scattered over templates as checkov.io/skip annotations."""
    for values_set in POLICY_VALUES_SETS:
        for obj in render(values_set).objects:
            for path_annotations in (
                obj["metadata"].get("annotations") or {},
                ((obj.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {},
            ):
                skips = [key for key in path_annotations if key.startswith("checkov.io/skip")]
                assert not skips, f"[{values_set}] {obj['kind']}/{obj['metadata']['name']} skips {skips}"


def skip_entries_with_reasons(text: str) -> list[tuple[str, str]]:
    """(check id, justification) for each item of the skip-check list: the item's trailing comment, or the
    comment lines directly above it."""
    entries: list[tuple[str, str]] = []
    in_skip_list = False
    pending_comment: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if re.match(r"^skip-check\s*:", raw):
            in_skip_list = True
            pending_comment = []
            continue
        if in_skip_list and raw and not raw[0].isspace() and not line.startswith(("#", "-")):
            in_skip_list = False  # the next top-level key
        if not in_skip_list:
            continue
        if line.startswith("#"):
            pending_comment.append(line.lstrip("#").strip())
        elif line.startswith("-"):
            item, _, trailing = line[1:].partition("#")
            reason = " ".join([*pending_comment, trailing.strip()]).strip()
            entries.append((item.strip().strip("'\""), reason))
            pending_comment = []
        elif not line:
            pending_comment = []
    return entries


def test_every_checkov_skip_is_justified() -> None:
    if not CHECKOV_CONFIG.is_file():
        pytest.skip(f"{CHECKOV_CONFIG} does not exist: nothing is skipped")
    text = CHECKOV_CONFIG.read_text()
    configured = yaml.safe_load(text).get("skip-check") or []
    entries = skip_entries_with_reasons(text)
    assert [check for check, _ in entries] == [str(c) for c in configured], "skip-check list not parsed whole"
    for check, reason in entries:
        assert CHECK_ID.match(check), f"{check!r} is not a checkov check id (skip by id, not by severity)"
        assert len(reason.split()) >= 3, f"{check} is skipped without a justification comment"


def test_justification_parser_catches_a_bare_skip() -> None:
    text = (
        "framework:\n  - kubernetes\nskip-check:\n"
        "  # digests are pinned by the release pipeline\n  - CKV_K8S_43\n  - CKV_K8S_15\n"
    )
    assert skip_entries_with_reasons(text) == [
        ("CKV_K8S_43", "digests are pinned by the release pipeline"),
        ("CKV_K8S_15", ""),
    ]
