"""Configuration, read from the environment and validated at start: the one public configuration module.

The broker address follows the original example: ``BROKER_URL`` wins; otherwise the URL is composed from
the Kubernetes service variables ``RABBITMQ_SERVICE_SERVICE_HOST``/``_PORT`` and the credentials the chart
feeds from a Secret (``RABBITMQ_USERNAME``, ``RABBITMQ_PASSWORD``, ``RABBITMQ_VHOST``).

Two views of the same environment:

- :class:`Settings` / :func:`load_settings`: everything, a pydantic-settings model, for the worker, the
  producer, Flower and the demo. It is defined in the private ``taskqueue._settings`` and imported on
  first use, because pydantic alone costs ~90 ms of CPU at import.
- :class:`ProbeSettings` / :func:`load_probe_settings`: the few variables the health probes read
  (``WORKER_HEALTH_FILE``, ``HEALTH_MAX_AGE``, ``PRODUCER_HEALTH_FILE``, ``BEAT_HEALTH_FILE``,
  ``FLOWER_PORT``, ``FLOWER_URL_PREFIX``, ``FLOWER_BASIC_AUTH``),
  standard library only: Kubernetes runs a probe every few seconds in every pod. Same declarations
  (``taskqueue.settings_registry``: names, defaults, parsers), same messages as ``Settings``
  (``tests/unit/test_config.py`` checks they agree). A probe checks
  only what it reads: a bad ``WORKER_CONCURRENCY`` stops the worker itself at start.

This module must stay cheap to import: standard library only (``tests/unit/test_health.py`` checks it).

Secrets (the broker password, Flower's basic auth) never show in ``repr``, in logs or in error messages,
which name the variable but not its value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskqueue.settings_registry import (
    BY_ENV,
    MODULE_PATH,
    SECRET_VARIABLES,
    SETTINGS,
    ConfigError,
    Invalid,
    Kind,
    check_basic_auth,
    mask_url,
    parse_number,
    renamed_values,
    url_prefix,
)

if TYPE_CHECKING:  # at run time, ``Settings`` is imported on first access (``__getattr__`` below)
    from taskqueue._settings import Settings as Settings

__all__ = [
    "MODULE_PATH", "SECRET_VARIABLES", "ConfigError", "ProbeSettings", "Secret", "Settings",
    "check_basic_auth", "load_probe_settings", "load_settings", "mask_url", "url_prefix",
]


def load_settings() -> Settings:
    """Read and validate all the settings from the process environment; raise ConfigError naming every
    bad variable."""
    from taskqueue._settings import load_settings as load

    return load()


def __getattr__(name: str) -> Any:
    # ``from taskqueue.config import Settings`` imports pydantic only when someone asks for it.
    if name == "Settings":
        from taskqueue._settings import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- The probes' settings: standard library only ------------------------------------------------------


class Secret:
    """A string that never shows in ``repr``/``str`` (the stdlib twin of pydantic's ``SecretStr``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _default(env: str) -> Any:
    return BY_ENV[env].default


@dataclass(frozen=True)
class ProbeSettings:
    """What ``taskqueue health worker|producer|beat|flower`` read: the registry's ``probe`` settings.
    Built by :func:`load_probe_settings`, which validates; the constructor (for tests and callers holding
    valid values) does not."""

    worker_health_file: Path = field(default=_default("WORKER_HEALTH_FILE"))
    health_max_age: float = field(default=_default("HEALTH_MAX_AGE"))
    producer_health_file: Path = field(default=_default("PRODUCER_HEALTH_FILE"))
    flower_port: int = field(default=_default("FLOWER_PORT"))
    flower_basic_auth: Secret | None = field(default=_default("FLOWER_BASIC_AUTH"))
    flower_url_prefix: str = field(default=_default("FLOWER_URL_PREFIX"))
    beat_health_file: Path = field(default=_default("BEAT_HEALTH_FILE"))

    @property
    def flower_auth(self) -> str | None:
        return self.flower_basic_auth.get_secret_value() if self.flower_basic_auth else None


def _basic_auth(raw: str) -> Secret | None:
    if not raw:
        return None
    try:
        check_basic_auth(raw)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return Secret(raw)


#: The parser of each kind the probes read; same rules and messages as the Settings model's types.
_PARSERS: Mapping[Kind, Callable[[str], object]] = {
    "path": Path,
    "float>0": lambda raw: parse_number(raw, integer=False, gt=0),
    "port": lambda raw: int(parse_number(raw, integer=True, ge=1, le=65535)),
    "basic-auth": _basic_auth,
    "url-prefix": url_prefix,
}

#: The probes' settings, in the registry's order (so several problems are listed as Settings lists them).
PROBE_SETTINGS = tuple(setting for setting in SETTINGS if setting.probe)


def load_probe_settings(environ: Mapping[str, str] | None = None) -> ProbeSettings:
    """The probes' settings from ``environ`` (default: the process environment), with the rules and the
    messages of :func:`load_settings`; raise ConfigError naming every bad variable."""
    source = os.environ if environ is None else environ
    # Variable names are case-insensitive, as for Settings (pydantic-settings lowercases them the same way).
    env = {key.lower(): value for key, value in source.items()}
    env.update({name.lower(): value for name, value in renamed_values(source, PROBE_SETTINGS).items()})
    values: dict[str, Any] = {}
    problems: list[str] = []
    for setting in PROBE_SETTINGS:
        raw = env.get(setting.field)
        if raw is None:
            continue
        try:
            values[setting.field] = _PARSERS[setting.kind](raw)
        except Invalid as exc:
            shown = "" if setting.secret else f" (got {raw!r})"
            problems.append(f"{setting.env}: {exc}{shown}")
    if problems:
        raise ConfigError(f"invalid configuration: {'; '.join(problems)}")
    return ProbeSettings(**values)
