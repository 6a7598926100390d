"""Generates the chart's values.schema.json from values.yaml, where each key's type, constraints and
documentation live together:

- the structure (which keys an object has) and each key's JSON type come from the key and its default;
- the description is the key's helm-docs `# --` comment (the text the README's values table shows), or
  the plain comment of a key without one (the sections);
- every constraint comes from the key's `# @schema {...}` comment lines (JSON), above its `# --` line
  (helm-docs reads a comment from its last `# --` line on, so it never shows them);
- shared types are `# @schema-def NAME {...}` lines, the root's own keywords `# @schema-root {...}` lines.

The JSON of one annotation may continue over several lines of the same kind: each line but the last ends
with "," and the lines are joined with one space. A key's children become its "properties" unless its
annotation has a "$ref" (the shared type then owns the whole value). The type is inferred from the default
(null infers none) unless the annotation gives "type", "$ref", "oneOf", "anyOf" or "allOf".

Usage: python scripts/values_schema.py CHART_DIR (scripts/chart-docs.sh runs it; tests/chart/test_docs.py
checks that the committed schema is what it writes).
"""

# A script rather than a module of src/ or tests/support: it is a build tool of the chart, not of the package.

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_KEY_ANNOTATION = re.compile(r"^\s*# @schema (.*)$")
_DEF_ANNOTATION = re.compile(r"^# @schema-def ([A-Za-z0-9_]+) (.*)$")
_ROOT_ANNOTATION = re.compile(r"^# @schema-root (.*)$")
_DESCRIPTION_START = re.compile(r"^\s*# -- ?(.*)$")
_HELM_DOCS_TAG = re.compile(r"^\s*# @(default|raw|section|notationType)\b")
_COMMENT = re.compile(r"^\s*#(?: ?)(.*)$")
#: Keywords that say what the value is: the type is inferred from the default only without them.
_TYPE_KEYWORDS = ("type", "$ref", "oneOf", "anyOf", "allOf")


class AnnotationError(ValueError):
    """A `# @schema` comment that is not valid JSON, not an object, or not attached to a key."""


@dataclass
class _Key:
    """One key of values.yaml: its default, its head comment and its children (for a mapping)."""

    name: str
    path: str
    line: int
    default: Any
    comment: list[str]
    children: list[_Key] = field(default_factory=list)


def _join(fragments: list[str], where: str) -> dict[str, Any]:
    text = " ".join(fragments)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{where}: @schema is not JSON ({error}): {text}") from error
    if not isinstance(value, dict):
        raise AnnotationError(f"{where}: @schema must be a JSON object: {text}")
    return value


def _head_comment(lines: list[str], line: int) -> list[str]:
    """The comment lines right above line `line` (0-based), top first."""
    start = line
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return lines[start:line]


def _keys(node: yaml.MappingNode, lines: list[str], prefix: str) -> list[_Key]:
    keys = []
    for key_node, value_node in node.value:
        name = str(key_node.value)
        path = f"{prefix}.{name}" if prefix else name
        key = _Key(
            name=name,
            path=path,
            line=key_node.start_mark.line,
            default=yaml.safe_load(yaml.serialize(value_node)),
            comment=_head_comment(lines, key_node.start_mark.line),
        )
        if isinstance(value_node, yaml.MappingNode):
            key.children = _keys(value_node, lines, path)
        keys.append(key)
    return keys


def description(comment: list[str]) -> str | None:
    """The key's description: as helm-docs reads it, from the last `# --` line on (continuation lines
    joined with a space, helm-docs' `# @default`-style lines left out); for a key without one (a section,
    which the README's table leaves out) its whole plain comment; None without either."""
    starts = [i for i, line in enumerate(comment) if _DESCRIPTION_START.match(line)]
    parts = []
    for i, line in enumerate(comment[starts[-1] :] if starts else comment):
        if _HELM_DOCS_TAG.match(line) or _KEY_ANNOTATION.match(line):
            continue
        match = (_DESCRIPTION_START if starts and i == 0 else _COMMENT).match(line)
        assert match is not None
        parts.append(match.group(1))
    return " ".join(parts).strip() or None


#: JSON Schema's type of a default value, by its Python type; bool first, as a bool is an int too.
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
    (dict, "object"),
)


def _inferred_type(default: Any) -> str | None:
    return next((json_type for python_type, json_type in _JSON_TYPES if isinstance(default, python_type)),
                None)


def _key_schema(key: _Key) -> dict[str, Any]:
    fragments = [m.group(1) for m in map(_KEY_ANNOTATION.match, key.comment) if m]
    starts = [i for i, line in enumerate(key.comment) if _DESCRIPTION_START.match(line)]
    if starts and any(_KEY_ANNOTATION.match(line) for line in key.comment[starts[-1] :]):
        # helm-docs would show it in the README as part of the description.
        raise AnnotationError(f"values.yaml:{key.line + 1} ({key.path}): @schema below the # -- line")
    annotation = _join(fragments, f"values.yaml:{key.line + 1} ({key.path})") if fragments else {}
    schema: dict[str, Any] = {}
    if not any(k in annotation for k in _TYPE_KEYWORDS):
        inferred = _inferred_type(key.default)
        if inferred is not None:
            schema["type"] = inferred
    text = description(key.comment)
    if text is not None:
        schema["description"] = text
    schema.update(annotation)
    if "$ref" in annotation:
        for child in _walk(key.children):
            if any(map(_KEY_ANNOTATION.match, child.comment)):
                where = f"values.yaml:{child.line + 1} ({child.path})"
                raise AnnotationError(f"{where}: @schema under {key.path}, whose $ref types the whole value")
    elif key.children:
        properties = {child.name: _key_schema(child) for child in key.children}
        extra = schema.pop("properties", {})
        clash = sorted(set(properties) & set(extra))
        if clash:
            raise AnnotationError(
                f"values.yaml:{key.line + 1} ({key.path}): @schema repeats the keys {clash}"
            )
        schema["properties"] = properties | extra
    return schema


def generate(values_file: Path) -> dict[str, Any]:
    """The values schema of values_file (see the module's docstring)."""
    text = values_file.read_text()
    lines = text.splitlines()
    root_node = yaml.compose(text)
    if not isinstance(root_node, yaml.MappingNode):
        raise AnnotationError(f"{values_file}: not a mapping")
    keys = _keys(root_node, lines, "")

    # Every `# @schema` line must be in the head comment of a key (a stray one would be lost silently).
    attached = {key.line - len(key.comment) + i for key in _walk(keys) for i in range(len(key.comment))}
    for number, line in enumerate(lines):
        if _KEY_ANNOTATION.match(line) and number not in attached:
            raise AnnotationError(f"{values_file}:{number + 1}: @schema comment not right above a key")

    root_fragments = [m.group(1) for m in map(_ROOT_ANNOTATION.match, lines) if m]
    schema = _join(root_fragments, f"{values_file} (@schema-root)") if root_fragments else {}
    schema["properties"] = {key.name: _key_schema(key) for key in keys}
    definitions: dict[str, list[str]] = {}
    for match in filter(None, map(_DEF_ANNOTATION.match, lines)):
        definitions.setdefault(match.group(1), []).append(match.group(2))
    if definitions:
        schema["definitions"] = {
            name: _join(fragments, f"{values_file} (@schema-def {name})")
            for name, fragments in definitions.items()
        }
    return schema


def _walk(keys: list[_Key]) -> list[_Key]:
    return [k for key in keys for k in (key, *_walk(key.children))]


def render(schema: dict[str, Any]) -> str:
    """values.schema.json's text: 2-space indentation, non-ASCII kept, a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Writes CHART/values.schema.json from CHART/values.yaml.")
    parser.add_argument("chart", type=Path, help="the chart's directory")
    chart: Path = parser.parse_args(argv).chart
    try:
        text = render(generate(chart / "values.yaml"))
    except (AnnotationError, yaml.YAMLError) as error:
        print(f"[values-schema] {error}", file=sys.stderr)
        return 1
    (chart / "values.schema.json").write_text(text)
    print(f"[values-schema] wrote {chart / 'values.schema.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
