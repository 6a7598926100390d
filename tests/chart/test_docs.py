"""values.yaml is the chart's one source of documentation: README.md's values table (helm-docs, from the
`# --` comments) and values.schema.json (scripts/values_schema.py, from the keys, their defaults and their
`# @schema` comments) are what scripts/chart-docs.sh generates from it. The committed files must be exactly
that; editing a comment or an annotation alone makes them drift, and the check names the drifted file."""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.chart.rendering import CHART_DIR, REPO_ROOT

CHART_DOCS = REPO_ROOT / "scripts" / "chart-docs.sh"
BUILD_HELM_DOCS = REPO_ROOT / "scripts" / "build-helm-docs.sh"
GENERATOR = REPO_ROOT / "scripts" / "values_schema.py"
#: What chart-docs.sh reads, and what it writes.
SOURCES = ("Chart.yaml", "values.yaml", "README.md.gotmpl")
GENERATED = ("README.md", "values.schema.json")


@pytest.fixture(scope="module")
def helm_docs() -> None:
    """helm-docs built (scripts/setup.sh builds it; a second run of the build script does nothing)."""
    done = subprocess.run([str(BUILD_HELM_DOCS)], capture_output=True, text=True, timeout=1200, check=False)
    if done.returncode != 0 and shutil.which("go") is None:
        pytest.skip(f"helm-docs is not built and Go is missing: run {BUILD_HELM_DOCS.relative_to(REPO_ROOT)}")
    assert done.returncode == 0, done.stderr


def chart_copy(directory: Path, names: tuple[str, ...] = SOURCES) -> Path:
    """A copy of the chart's files `names` in directory/celery-rabbitmq."""
    chart = directory / "celery-rabbitmq"
    chart.mkdir(parents=True)
    for name in names:
        shutil.copy(CHART_DIR / name, chart / name)
    return chart


def generate(chart: Path) -> None:
    """scripts/chart-docs.sh on chart (a copy of the sources), which gets README.md and values.schema.json."""
    done = subprocess.run(
        [str(CHART_DOCS), str(chart)], capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def drifted(generated: Path, committed: Path) -> list[str]:
    """The generated files whose committed copy differs, each with the head of its diff."""
    found = []
    for name in GENERATED:
        new, old = (generated / name).read_text(), (committed / name).read_text()
        if new != old:
            diff = difflib.unified_diff(
                old.splitlines(), new.splitlines(), f"committed {name}", f"generated {name}", lineterm="", n=0
            )
            found.append(f"{name}\n" + "\n".join(list(diff)[:12]))
    return found


def names(found: list[str]) -> list[str]:
    return [entry.split("\n", 1)[0] for entry in found]


def edited_copy(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the sources with `old` replaced by `new` (once) in values.yaml, regenerated."""
    chart = chart_copy(tmp_path)
    values = (chart / "values.yaml").read_text()
    assert values.count(old) == 1, old
    (chart / "values.yaml").write_text(values.replace(old, new))
    generate(chart)
    return chart


# ------------------------------------------------------------------------------------------ the drift check


def test_committed_readme_and_schema_are_what_values_yaml_generates(helm_docs: None, tmp_path: Path) -> None:
    chart = chart_copy(tmp_path)
    generate(chart)
    found = drifted(chart, CHART_DIR)
    assert found == [], "differ from what scripts/chart-docs.sh writes (run it, commit):\n" + "\n".join(found)


def test_editing_a_description_alone_drifts_readme_and_schema(helm_docs: None, tmp_path: Path) -> None:
    chart = edited_copy(
        tmp_path,
        "  # -- Log level of the taskqueue processes (LOG_LEVEL).\n",
        "  # -- Log level of the taskqueue processes (LOG_LEVEL), edited.\n",
    )
    assert names(drifted(chart, CHART_DIR)) == ["README.md", "values.schema.json"]
    logged = json.loads((chart / "values.schema.json").read_text())["properties"]["celery"]["properties"]
    assert logged["logLevel"]["description"] == "Log level of the taskqueue processes (LOG_LEVEL), edited."
    assert (
        '| `celery.logLevel` | `"info"` | Log level of the taskqueue processes (LOG_LEVEL), edited. |'
        in (chart / "README.md").read_text()
    )


def test_editing_an_annotation_alone_drifts_the_schema(helm_docs: None, tmp_path: Path) -> None:
    chart = edited_copy(
        tmp_path,
        '  # @schema {"minimum": 1}\n  # -- Deliveries of one message',
        '  # @schema {"minimum": 2}\n  # -- Deliveries of one message',
    )
    assert names(drifted(chart, CHART_DIR)) == ["values.schema.json"]
    limit = json.loads((chart / "values.schema.json").read_text())["properties"]["celery"]["properties"]
    assert limit["queueDeliveryLimit"]["minimum"] == 2


def test_a_hand_edit_of_a_generated_file_is_drift(tmp_path: Path) -> None:
    generated = chart_copy(tmp_path / "generated", GENERATED)
    committed = chart_copy(tmp_path / "committed", GENERATED)
    readme = (committed / "README.md").read_text()
    row = "| `celery.queueDeliveryLimit` | `10` |"
    assert readme.count(row) == 1
    (committed / "README.md").write_text(readme.replace(row, "| `celery.queueDeliveryLimit` | `5` |"))
    assert names(drifted(generated, committed)) == ["README.md"]
    assert "-| `celery.queueDeliveryLimit` | `5` |" in drifted(generated, committed)[0]


# ----------------------------------------------------------------------------------- the schema generator


def run_generator(tmp_path: Path, values: str) -> tuple[int, str, dict[str, Any] | None]:
    """scripts/values_schema.py on a chart whose values.yaml is `values`: (exit code, stderr, schema)."""
    (tmp_path / "values.yaml").write_text(values)
    done = subprocess.run(
        [sys.executable, str(GENERATOR), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = tmp_path / "values.schema.json"
    return done.returncode, done.stderr, json.loads(out.read_text()) if out.exists() else None


SAMPLE = """\
# Header comment: not a key's.
# @schema-root {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
# @schema-root "additionalProperties": false}
# @schema-def port {"type": "integer", "minimum": 1,
# @schema-def port "maximum": 65535}

# The section (a plain comment).
# @schema {"additionalProperties": false}
section:
  # @schema {"minLength": 1, "pattern": "^[a-z, ]+$",
  # @schema "maxLength": 63}
  # -- A name, on
  # two lines.
  # @default -- helm-docs' own tag, not text
  name: abc
  # -- A count.
  count: 3
  ratio: 0.5
  enabled: true
  list: []
  # @schema {"type": ["integer", "null"], "minimum": 0}
  # -- Nothing yet.
  unset: null
  # @schema {"$ref": "#/definitions/port"}
  # -- A port.
  port: 8080
  # @schema {"properties": {"optional": {"type": "string"}}, "additionalProperties": false}
  # -- A closed object with an optional key besides its defaults.
  nested:
    # -- Given by default.
    given: x
"""


def test_the_generator_infers_types_and_takes_constraints_and_descriptions_from_the_comments(
    tmp_path: Path,
) -> None:
    code, stderr, schema = run_generator(tmp_path, SAMPLE)
    assert code == 0, stderr
    assert schema == {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "section": {
                "type": "object",
                "description": "The section (a plain comment).",
                "additionalProperties": False,
                "properties": {
                    "name": {
                        "type": "string",
                        "description": "A name, on two lines.",
                        "minLength": 1,
                        "pattern": "^[a-z, ]+$",
                        "maxLength": 63,
                    },
                    "count": {"type": "integer", "description": "A count."},
                    "ratio": {"type": "number"},
                    "enabled": {"type": "boolean"},
                    "list": {"type": "array"},
                    "unset": {"description": "Nothing yet.", "type": ["integer", "null"], "minimum": 0},
                    "port": {"description": "A port.", "$ref": "#/definitions/port"},
                    "nested": {
                        "type": "object",
                        "description": "A closed object with an optional key besides its defaults.",
                        "additionalProperties": False,
                        "properties": {
                            "given": {"type": "string", "description": "Given by default."},
                            "optional": {"type": "string"},
                        },
                    },
                },
            }
        },
        "definitions": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ('# @schema {"minimum": 1\nkey: 1\n', "values.yaml:2 (key): @schema is not JSON"),
        ("# @schema [1]\nkey: 1\n", "values.yaml:2 (key): @schema must be a JSON object"),
        (
            '# -- A key.\n# @schema {"minimum": 1}\nkey: 1\n',
            "values.yaml:3 (key): @schema below the # -- line",
        ),
        ('key: 1\n# @schema {"minimum": 1}\n\nother: 2\n', "values.yaml:2: @schema comment not right above"),
        ('list:\n  # @schema {"minimum": 1}\n  - 1\n', "values.yaml:2: @schema comment not right above"),
        (
            '# @schema {"$ref": "#/definitions/x"}\nouter:\n  # @schema {"minimum": 1}\n  inner: 1\n',
            "values.yaml:4 (outer.inner): @schema under outer, whose $ref types the whole value",
        ),
        (
            '# @schema {"properties": {"inner": {}}}\nouter:\n  inner: 1\n',
            "values.yaml:2 (outer): @schema repeats the keys ['inner']",
        ),
    ],
    ids=["not-json", "not-object", "below-description", "stray", "in-a-list", "under-ref", "repeated-key"],
)
def test_the_generator_refuses_a_misplaced_or_malformed_annotation(
    tmp_path: Path, values: str, message: str
) -> None:
    code, stderr, schema = run_generator(tmp_path, values)
    assert (code, schema) == (1, None), stderr
    assert message in stderr, stderr


def test_the_schema_descriptions_are_the_readme_table_text() -> None:
    """Each key of the README's table is in the schema with the same description (the generator reads the
    `# --` comment the way helm-docs does), unless it is inside a value a shared type ($ref) describes."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    table = (CHART_DIR / "README.md").read_text().split("\n## Values\n", 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \| .*? \| (.*) \|$", table, re.MULTILINE)
    assert len(rows) > 300
    for path, text in rows:
        node: dict[str, Any] = schema
        parts = path.split(".")
        while parts and "$ref" not in node:
            assert parts[0] in node.get("properties", {}), f"{path}: not in values.schema.json"
            node = node["properties"][parts.pop(0)]
        if not parts:
            assert node.get("description") == text, path
