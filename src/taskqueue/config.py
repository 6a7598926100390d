"""Configuration, read from the environment and validated at start: the one public configuration module.

The broker address follows the original example: ``BROKER_URL`` wins; otherwise the URL is composed from
the Kubernetes service variables ``RABBITMQ_SERVICE_SERVICE_HOST``/``_PORT`` and the credentials the chart
feeds from a Secret (``RABBITMQ_USERNAME``, ``RABBITMQ_PASSWORD``, ``RABBITMQ_VHOST``).

Two views of the same environment:

- :class:`Settings` / :func:`load_settings`: everything, a pydantic-settings model, for the worker, the
  producer, Flower and the demo. It is defined in the private ``taskqueue._settings`` and imported on
  first use, because pydantic alone costs ~90 ms of CPU at import.
- :class:`ProbeSettings` / :func:`load_probe_settings`: the few variables the health probes read
  (``HEALTH_FILE``, ``HEALTH_MAX_AGE``, ``PRODUCER_HEALTH_FILE``, ``BEAT_HEALTH_FILE``, ``FLOWER_PORT``,
  ``FLOWER_URL_PREFIX``, ``FLOWER_BASIC_AUTH``),
  standard library only: Kubernetes runs a probe every few seconds in every pod. Same defaults, same
  rules, same messages as ``Settings`` (``tests/unit/test_config.py`` checks they agree). A probe checks
  only what it reads: a bad ``WORKER_CONCURRENCY`` stops the worker itself at start.

This module must stay cheap to import: standard library only (``tests/unit/test_health.py`` checks it).

Secrets (the broker password, Flower's basic auth) never show in ``repr``, in logs or in error messages,
which name the variable but not its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # at run time, ``Settings`` is imported on first access (``__getattr__`` below)
    from taskqueue._settings import Settings as Settings

#: Environment variables whose values are secret: never echoed back in an error.
SECRET_VARIABLES = frozenset({"BROKER_URL", "RABBITMQ_PASSWORD", "FLOWER_BASIC_AUTH", "FLOWER_BROKER_API"})

# Defaults shared by Settings and ProbeSettings (one definition: they cannot drift).
DEFAULT_HEALTH_FILE = Path("/tmp/taskqueue-worker.heartbeat")
# The producer's own file: a worker and a producer sharing one environment (the demo, a laptop, the
# tests) must not overwrite each other's heartbeat.
DEFAULT_PRODUCER_HEALTH_FILE = Path("/tmp/taskqueue-producer.heartbeat")
# celery beat's own heartbeat file (``taskqueue beat``, checked by ``taskqueue health beat``).
DEFAULT_BEAT_HEALTH_FILE = Path("/tmp/taskqueue-beat.heartbeat")
DEFAULT_HEALTH_MAX_AGE = 30.0
DEFAULT_FLOWER_PORT = 5555

#: A Python import path (``pkg.module``): what WORKER_TASK_MODULES lists.
MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, with a message that names the variable and never a secret."""


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


# --- Rules shared by Settings and ProbeSettings ------------------------------------------------------


def url_prefix(value: str) -> str:
    """Flower wants the prefix without slashes; an ingress path "/flower/" means "flower"."""
    return value.strip("/")


def check_basic_auth(value: str) -> None:
    """``user:password``, comma-separated for several users; the message never contains the value."""
    for pair in value.split(","):
        user, sep, password = pair.partition(":")
        if not (sep and user and password):
            raise ValueError("must be user:password (comma-separate several)")


def mask_url(url: str) -> str:
    """``amqp://user:secret@host/`` -> ``amqp://user:***@host/``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


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


@dataclass(frozen=True)
class ProbeSettings:
    """What ``taskqueue health worker|producer|beat|flower`` read. Built by :func:`load_probe_settings`, which
    validates; the constructor (for tests and callers holding valid values) does not."""

    health_file: Path = DEFAULT_HEALTH_FILE
    health_max_age: float = DEFAULT_HEALTH_MAX_AGE
    producer_health_file: Path = DEFAULT_PRODUCER_HEALTH_FILE
    flower_port: int = DEFAULT_FLOWER_PORT
    flower_basic_auth: Secret | None = None
    flower_url_prefix: str = ""
    beat_health_file: Path = DEFAULT_BEAT_HEALTH_FILE

    @property
    def flower_auth(self) -> str | None:
        return self.flower_basic_auth.get_secret_value() if self.flower_basic_auth else None


class _Invalid(ValueError):
    """One variable's problem, worded like pydantic's (the message ``Settings`` gives for it)."""


_NOT_A_NUMBER = "Input should be a valid number, unable to parse string as a number"
_NOT_AN_INTEGER = "Input should be a valid integer, unable to parse string as an integer"


def _number_text(raw: str, invalid: str) -> str:
    # pydantic's lax parsing of a string: surrounding whitespace ignored, ASCII only, single underscores
    # between characters allowed (and dropped).
    text = raw.strip()
    if not text.isascii() or text.startswith("_") or text.endswith("_") or "__" in text:
        raise _Invalid(invalid)
    return text.replace("_", "")


def _positive_float(raw: str) -> float:
    try:
        value = float(_number_text(raw, _NOT_A_NUMBER))
    except ValueError:
        raise _Invalid(_NOT_A_NUMBER) from None
    if not value > 0:  # NaN too
        raise _Invalid("Input should be greater than 0")
    return value


def _port(raw: str) -> int:
    text = _number_text(raw, _NOT_AN_INTEGER)
    # pydantic accepts a zero fraction ("5555.0"), not "5555." nor "5555.5".
    whole, dot, fraction = text.partition(".")
    if dot and fraction and not fraction.strip("0"):
        text = whole
    try:
        value = int(text)
    except ValueError:
        raise _Invalid(_NOT_AN_INTEGER) from None
    if value < 1:
        raise _Invalid("Input should be greater than or equal to 1")
    if value > 65535:
        raise _Invalid("Input should be less than or equal to 65535")
    return value


def _basic_auth(raw: str) -> Secret | None:
    if not raw:
        return None
    try:
        check_basic_auth(raw)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None
    return Secret(raw)


def load_probe_settings(environ: Mapping[str, str] | None = None) -> ProbeSettings:
    """The probes' settings from ``environ`` (default: the process environment), with the rules and the
    messages of :func:`load_settings`; raise ConfigError naming every bad variable."""
    # Variable names are case-insensitive, as for Settings (pydantic-settings lowercases them the same way).
    env = {key.lower(): value for key, value in (os.environ if environ is None else environ).items()}
    values: dict[str, Any] = {}
    problems: list[str] = []

    def read(field: str, parse: Callable[[str], T]) -> None:
        raw = env.get(field)
        if raw is None:
            return
        try:
            values[field] = parse(raw)
        except _Invalid as exc:
            variable = field.upper()
            shown = "" if variable in SECRET_VARIABLES else f" (got {raw!r})"
            problems.append(f"{variable}: {exc}{shown}")

    # In the order of Settings' fields, so that several problems are listed in the same order.
    read("health_file", Path)
    read("health_max_age", _positive_float)
    read("producer_health_file", Path)
    read("beat_health_file", Path)
    read("flower_port", _port)
    read("flower_basic_auth", _basic_auth)
    read("flower_url_prefix", url_prefix)
    if problems:
        raise ConfigError(f"invalid configuration: {'; '.join(problems)}")
    return ProbeSettings(**values)
