"""The settings registry is the one configuration contract: the Settings model, the probes' loader, the
README's table and the chart's container env all agree with it."""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from pathlib import Path
from typing import Any

import pytest
from annotated_types import Ge, Gt, Le
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from taskqueue import _settings, settings_registry
from taskqueue._settings import Settings
from taskqueue.config import ProbeSettings, load_probe_settings, load_settings
from taskqueue.schedule import DEFAULT_SCHEDULE
from taskqueue.settings_registry import (
    BY_ENV,
    SETTINGS,
    TABLE_BEGIN,
    TABLE_END,
    Setting,
    markdown_table,
    renamed_values,
    replace_table,
)

README = Path(__file__).resolve().parents[2] / "README.md"


# --- README ---------------------------------------------------------------------------------------------


def readme_table(text: str) -> str:
    return text[text.index(TABLE_BEGIN) + len(TABLE_BEGIN) + 1 : text.index(TABLE_END)]


def test_readme_table_is_the_registry() -> None:
    # Regenerate with: python -m taskqueue.settings_registry --write-readme README.md
    assert readme_table(README.read_text()) == markdown_table()


def test_a_changed_doc_line_makes_the_readme_differ() -> None:
    # The drift check above compares whole rows: a doc changed in the registry alone shows.
    changed = [dataclasses.replace(s, doc=f"{s.doc}!") if s.env == "QUEUE_NAME" else s for s in SETTINGS]
    assert readme_table(README.read_text()) != markdown_table(changed)


def test_replace_table_keeps_the_text_around_the_markers() -> None:
    text = f"before\n{TABLE_BEGIN}\nold\n{TABLE_END}\nafter\n"
    assert replace_table(text, "new\n") == f"before\n{TABLE_BEGIN}\nnew\n{TABLE_END}\nafter\n"


def test_one_row_per_variable() -> None:
    rows = markdown_table().splitlines()[2:]
    assert [row.split("|")[1].strip(" `") for row in rows] == [s.env for s in SETTINGS]
    assert len(BY_ENV) == len(SETTINGS)  # no variable declared twice


# --- The Settings model ---------------------------------------------------------------------------------


def test_settings_fields_are_the_declared_variables() -> None:
    assert list(Settings.model_fields) == [s.field for s in SETTINGS]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env)
def test_settings_field_default_and_description_come_from_the_registry(setting: Setting) -> None:
    info = Settings.model_fields[setting.field]
    expected = DEFAULT_SCHEDULE if setting.kind == "schedule" else setting.default
    assert info.default == expected
    assert info.description == setting.doc


def _constraints(info: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    metadata = list(info.metadata)
    # An optional constrained type (``Annotated[int, Field(gt=0)] | None``) keeps its constraints inside.
    for arg in typing.get_args(info.annotation):
        metadata += getattr(arg, "__metadata__", ())
    for item in metadata:
        for cls, name in ((Gt, "gt"), (Ge, "ge"), (Le, "le")):
            if isinstance(item, cls):
                found[name] = getattr(item, name)
        for sub in getattr(item, "metadata", ()):  # a FieldInfo inside Annotated
            for cls, name in ((Gt, "gt"), (Ge, "ge"), (Le, "le")):
                if isinstance(sub, cls):
                    found[name] = getattr(sub, name)
    return found


def _base_type(info: FieldInfo) -> Any:
    annotation: Any = info.annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return typing.get_origin(annotation) or annotation


#: The Python type and constraints each kind means in the Settings model.
KIND_TYPES: dict[str, tuple[Any, dict[str, Any]]] = {
    "int>0": (int, {"gt": 0}),
    "float>0": (float, {"gt": 0}),
    "port": (int, {"ge": 1, "le": 65535}),
    "bool": (bool, {}),
    "path": (Path, {}),
    "str": (str, {}),
    "pattern": (str, {}),
    "url-prefix": (str, {}),
    "enum": (typing.Literal, {}),
    "module-list": (tuple, {}),
    "schedule": (tuple, {}),
}


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env)
def test_settings_field_type_is_the_declared_kind(setting: Setting) -> None:
    info = Settings.model_fields[setting.field]
    optional = type(None) in typing.get_args(info.annotation)
    assert optional == setting.optional
    base = _base_type(info)
    if setting.secret:
        assert base is SecretStr
        return
    expected_type, expected_constraints = KIND_TYPES[setting.kind]
    assert base is expected_type
    constraints = _constraints(info)
    assert {k: constraints[k] for k in expected_constraints if k in constraints} == expected_constraints
    if setting.kind == "enum":
        assert typing.get_args(info.annotation) == setting.choices


def test_beat_schedule_default_is_the_schedule_module_default() -> None:
    assert _settings.declared("BEAT_SCHEDULE").default == DEFAULT_SCHEDULE


# --- The probes' loader ---------------------------------------------------------------------------------


def test_probe_settings_fields_are_the_registry_probe_settings() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(ProbeSettings)}
    assert fields == {s.field: s.default for s in SETTINGS if s.probe}


# --- Former names ---------------------------------------------------------------------------------------

RENAMED = Setting("NEW_NAME", "int>0", 1, "a renamed setting", frozenset({"worker"}), former=("OLD_NAME",))


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test sees the first warning of a name: the registry warns once per process.
    monkeypatch.setattr(settings_registry, "_warned", set())


def test_former_name_is_read_with_one_warning_naming_the_new_one(fresh_warnings: None) -> None:
    with pytest.warns(FutureWarning) as caught:
        assert renamed_values({"old_name": "3"}, [RENAMED]) == {"NEW_NAME": "3"}
        assert renamed_values({"OLD_NAME": "4"}, [RENAMED]) == {"NEW_NAME": "4"}
    assert [str(w.message) for w in caught] == [
        "OLD_NAME is deprecated and will stop working in the next release: set NEW_NAME instead"
    ]


def test_new_name_wins_over_a_former_one(fresh_warnings: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either: the former name is not used
        assert renamed_values({"NEW_NAME": "5", "OLD_NAME": "3"}, [RENAMED]) == {}


def test_both_loaders_read_a_former_name(
    clean_env: pytest.MonkeyPatch, fresh_warnings: None, tmp_path: Path
) -> None:
    # HEALTH_FILE was renamed WORKER_HEALTH_FILE (the producer's and beat's files were prefixed already).
    clean_env.setenv("HEALTH_FILE", str(tmp_path / "hb"))
    with pytest.warns(FutureWarning, match="HEALTH_FILE is deprecated .* set WORKER_HEALTH_FILE instead"):
        assert load_probe_settings().worker_health_file == tmp_path / "hb"
    assert load_settings().worker_health_file == tmp_path / "hb"  # warned once already: no second warning
