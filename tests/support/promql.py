"""The metric names a PromQL expression reads, and the PromQL of the chart's alerts and dashboards.

``metric_name_choices`` is a small lexer, not a PromQL parser: it reads ``__name__`` matchers, then drops
string literals, label matchers (``{...}``), range and subquery brackets (``[...]``) and the label lists of
``by``/``without``/``on``/``ignoring``/``group_left``/``group_right``, and keeps every identifier that is not
a function or aggregation (followed by ``(``), a keyword, or a number. That is exact for the selector forms
the chart uses; tests pin it on tricky expressions (tests/chart/test_dashboards.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "atan2", "inf", "nan", "Inf", "NaN", "start", "end",
})


_NAME_MATCHER = re.compile(r'__name__\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"')
_PLAIN_NAME = re.compile(r"[A-Za-z_:][\w:]*")


def metric_name_choices(expr: str) -> set[frozenset[str]]:
    """For each selector of ``expr``, the names it may read: one for ``name{...}``, the alternatives of a
    ``{__name__=~"a|b"}`` selector (an alternation of plain names only: anything else is refused, as its
    names cannot be listed). A selector is satisfied when any one of its names is emitted."""
    choices: set[frozenset[str]] = set()
    literals: list[str] = []

    def mask(match: re.Match[str]) -> str:
        literals.append(match.group(0))
        return f'"{len(literals) - 1}"'

    masked = _STRING.sub(mask, expr)  # braces inside strings are no selectors' braces
    for block in _BRACES.findall(masked):
        block = re.sub(r'"(\d+)"', lambda m: literals[int(m.group(1))], block)
        for operator, pattern in _NAME_MATCHER.findall(block):
            names = pattern.split("|") if operator == "=~" else [pattern]
            if not all(_PLAIN_NAME.fullmatch(name) for name in names):
                raise ValueError(f"__name__ matcher {pattern!r} is not an alternation of plain names")
            choices.add(frozenset(names))
    return choices | {frozenset({name}) for name in _plain_names(expr)}


def metric_names(expr: str) -> set[str]:
    """Every metric name ``expr`` may select (e.g. ``flower_task_runtime_seconds_bucket``, ``up``, each
    alternative of a ``__name__`` matcher)."""
    return set().union(*metric_name_choices(expr))


def _plain_names(expr: str) -> set[str]:
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _LABEL_LIST.sub("", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in _KEYWORDS:
            continue
        names.add(name)
    return names


def dashboard_exprs(dashboard: Mapping[str, Any]) -> Iterator[str]:
    """Every PromQL expression of a Grafana dashboard: panel targets (rows' nested panels included) and
    query variables (``label_values(<selector>, label)`` reads the selector's metric)."""
    panels: list[Mapping[str, Any]] = list(dashboard.get("panels", []))
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield str(target["expr"])
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = str(query.get("query", "")) if isinstance(query, Mapping) else str(query or "")
        found = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text)
        if found:
            yield found.group(1)


def load_dashboards(directory: Path) -> dict[str, dict[str, Any]]:
    """The dashboards of ``directory`` (``*.json``), by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}
