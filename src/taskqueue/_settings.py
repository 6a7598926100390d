"""The full settings of the runtime (worker, producer, Flower, demo): a pydantic-settings model.

Private: import :class:`Settings` and :func:`load_settings` from :mod:`taskqueue.config`, the one public
configuration module. The model lives here so that importing ``taskqueue.config`` costs no pydantic
(about 90 ms of CPU): the health probes, run every few seconds in every pod, use the stdlib-only
``ProbeSettings`` of that module instead.

Each field's variable, default and description come from its declaration in
``taskqueue.settings_registry`` (``declared``); the types and validators stay here, and
``tests/unit/test_settings_registry.py`` checks each type against the declared kind. This module imports
the registry and ``taskqueue.schedule`` only, never ``taskqueue.config`` (which imports it lazily).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from taskqueue.schedule import ScheduleEntry, parse_schedule
from taskqueue.settings_registry import (
    BY_ENV,
    MODULE_PATH,
    SECRET_VARIABLES,
    ConfigError,
    check_basic_auth,
    mask_url,
    renamed_values,
    url_prefix,
)

#: Variables whose messages quote the bad part themselves: the whole value (a JSON schedule) is not echoed.
QUOTING_VARIABLES = frozenset({"BEAT_SCHEDULE"})

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]
QueueName = Annotated[str, Field(min_length=1, max_length=243, pattern=r"^[A-Za-z0-9_.:-]+$")]
LogLevel = Annotated[str, Field(pattern=r"(?i)^(debug|info|warning|error|critical)$")]


def declared(env: str) -> Any:
    """The field of ``env``: default and description from its declaration in the registry."""
    setting = BY_ENV[env]
    default = parse_schedule(str(setting.default)) if setting.kind == "schedule" else setting.default
    return Field(default=default, description=setting.doc)


class Settings(BaseSettings):
    """Everything the runtime reads from its environment. Field ``foo_bar`` is variable ``FOO_BAR``."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Broker. BROKER_URL wins over the parts below.
    broker_url: SecretStr | None = declared("BROKER_URL")
    rabbitmq_service_service_host: str | None = declared("RABBITMQ_SERVICE_SERVICE_HOST")
    rabbitmq_service_service_port: Port = declared("RABBITMQ_SERVICE_SERVICE_PORT")
    rabbitmq_username: str = declared("RABBITMQ_USERNAME")
    rabbitmq_password: SecretStr | None = declared("RABBITMQ_PASSWORD")
    rabbitmq_vhost: str = declared("RABBITMQ_VHOST")

    # Celery.
    result_backend: str = declared("RESULT_BACKEND")
    # At most 243 characters: AMQP names stop at 255, and the dead-letter queue adds ".dead-letter" (12).
    queue_name: QueueName = declared("QUEUE_NAME")
    # Quorum queues (replicated, durable) need RabbitMQ >= 3.8; "classic" for older brokers or for an
    # existing classic queue of the same name (a queue's type cannot change once declared).
    queue_type: Literal["quorum", "classic"] = declared("QUEUE_TYPE")
    # Deliveries of one message before a quorum queue dead-letters it (x-delivery-limit): ends the loop of
    # a poison task that kills its worker process. Classic queues have no delivery count: ignored there.
    queue_delivery_limit: PositiveInt = declared("QUEUE_DELIVERY_LIMIT")
    # Inline (solo, taskqueue.pool) by default: no per-task IPC between processes; prefork for CPU-bound
    # tasks on several cores.
    worker_pool: Literal["solo", "prefork"] = declared("WORKER_POOL")
    worker_concurrency: PositiveInt = declared("WORKER_CONCURRENCY")
    # Messages each worker process reserves: 16 keeps an inline worker busy across the broker's round trip
    # from an ack to the next delivery (a quorum queue's is long); 1 for a worker group of long tasks.
    worker_prefetch_multiplier: PositiveInt = declared("WORKER_PREFETCH_MULTIPLIER")
    task_time_limit: PositiveInt = declared("TASK_TIME_LIMIT")
    task_soft_time_limit: PositiveInt = declared("TASK_SOFT_TIME_LIMIT")
    broker_connection_timeout: PositiveFloat = declared("BROKER_CONNECTION_TIMEOUT")
    # AMQP heartbeats find a silently dead connection in 2 x this instead of Celery's 2 x 120 s.
    worker_broker_heartbeat: PositiveInt = declared("WORKER_BROKER_HEARTBEAT")
    # Mingle (sync revoked ids with peers at start) and gossip (track peers' events): off by default, as
    # nothing here relies on them and mingle alone costs about a second at every start.
    worker_mingle: bool = declared("WORKER_MINGLE")
    worker_gossip: bool = declared("WORKER_GOSSIP")
    # Remote control (inspect/control commands, Flower's worker actions); the health check never needs it.
    worker_remote_control: bool = declared("WORKER_REMOTE_CONTROL")
    log_level: LogLevel = declared("LOG_LEVEL")
    # Celery's two info lines per task (received, succeeded): off by default, as they cost a sixth of a busy
    # worker's time and Flower shows the same; unexpected failures (error level) and rejections still log.
    worker_log_tasks: bool = declared("WORKER_LOG_TASKS")
    # Modules of tasks the worker registers besides taskqueue.tasks (comma-separated, as Python import
    # paths): none by default, so a production worker runs only ``add``. NoDecode: a plain list, not JSON.
    worker_task_modules: Annotated[tuple[str, ...], NoDecode] = declared("WORKER_TASK_MODULES")

    # Producer: seconds between dispatches, or tasks per second (PRODUCER_RATE R means PRODUCER_INTERVAL
    # 1/R; set one of them), tasks to send (none: until stopped) and, once sent, whether to stay up idle
    # (a Kubernetes Deployment restarts an exited container, which would send another batch).
    producer_interval: PositiveFloat = declared("PRODUCER_INTERVAL")
    producer_rate: Annotated[float, Field(gt=0, le=100_000)] | None = declared("PRODUCER_RATE")
    producer_count: PositiveInt | None = declared("PRODUCER_COUNT")
    producer_idle_after_count: bool = declared("PRODUCER_IDLE_AFTER_COUNT")

    # Health: the heartbeat file the worker refreshes and the probe checks for freshness. The interval and
    # the max age apply to the producer's heartbeat too; it has a file of its own, so that a worker and a
    # producer started from one environment do not overwrite each other's.
    worker_health_file: Path = declared("WORKER_HEALTH_FILE")
    health_interval: PositiveFloat = declared("HEALTH_INTERVAL")
    health_max_age: PositiveFloat = declared("HEALTH_MAX_AGE")
    producer_health_file: Path = declared("PRODUCER_HEALTH_FILE")
    beat_health_file: Path = declared("BEAT_HEALTH_FILE")

    # celery beat (``taskqueue beat``): the schedule, a JSON list of entries (``taskqueue.schedule``;
    # NoDecode: parsed and checked by the validator below, with messages naming the entry and field), and
    # the file beat keeps its schedule state in (last run of each entry), in a writable directory.
    beat_schedule: Annotated[tuple[ScheduleEntry, ...], NoDecode] = declared("BEAT_SCHEDULE")
    beat_schedule_file: Path = declared("BEAT_SCHEDULE_FILE")

    # Flower.
    flower_port: Port = declared("FLOWER_PORT")
    flower_address: str = declared("FLOWER_ADDRESS")
    flower_basic_auth: SecretStr | None = declared("FLOWER_BASIC_AUTH")
    flower_url_prefix: str = declared("FLOWER_URL_PREFIX")
    flower_persistent: bool = declared("FLOWER_PERSISTENT")
    flower_db: Path = declared("FLOWER_DB")
    flower_max_tasks: PositiveInt = declared("FLOWER_MAX_TASKS")
    flower_max_workers: PositiveInt = declared("FLOWER_MAX_WORKERS")
    flower_allow_unauthenticated: bool = declared("FLOWER_ALLOW_UNAUTHENTICATED")
    # Same names and units as Flower's own options: milliseconds between state saves when persistent, and
    # seconds after which an offline worker leaves the list (rollouts leave old pod names behind).
    flower_state_save_interval: PositiveInt = declared("FLOWER_STATE_SAVE_INTERVAL")
    flower_purge_offline_workers: PositiveInt | None = declared("FLOWER_PURGE_OFFLINE_WORKERS")
    # RabbitMQ's management API (http://host:15672/api/): Flower's Broker tab reads queue depths and
    # consumers there. Without user info in the URL, Flower signs in with the broker's own credentials.
    # Secret: a URL with user info carries a password.
    flower_broker_api: SecretStr | None = declared("FLOWER_BROKER_API")

    @field_validator("worker_task_modules", mode="before")
    @classmethod
    def _split_task_modules(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        # "a, b," means a and b: blanks around commas and empty items are forgiven, bad names are not.
        names = tuple(name.strip() for name in value.split(",") if name.strip())
        bad = [name for name in names if not MODULE_PATH.fullmatch(name)]
        if bad:
            raise ValueError(f"not a Python module path: {', '.join(map(repr, bad))} (write pkg.tasks)")
        return names

    @field_validator("beat_schedule", mode="before")
    @classmethod
    def _parse_beat_schedule(cls, value: object) -> object:
        return parse_schedule(value) if isinstance(value, str) else value

    @field_validator("flower_url_prefix")
    @classmethod
    def _strip_prefix_slashes(cls, value: str) -> str:
        return url_prefix(value)

    @field_validator("flower_broker_api")
    @classmethod
    def _check_broker_api(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be the http(s):// URL of RabbitMQ's management API, e.g. http://host:15672/api/")
        return value

    @field_validator("flower_basic_auth")
    @classmethod
    def _check_basic_auth(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        check_basic_auth(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.producer_rate is not None and "producer_interval" in self.model_fields_set:
            raise ValueError(
                "PRODUCER_RATE and PRODUCER_INTERVAL are mutually exclusive (PRODUCER_RATE R means "
                "PRODUCER_INTERVAL 1/R); set one"
            )
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError(
                "TASK_SOFT_TIME_LIMIT must be below TASK_TIME_LIMIT "
                f"({self.task_soft_time_limit} >= {self.task_time_limit})"
            )
        if self.worker_pool == "solo" and self.worker_concurrency != 1:
            raise ValueError(
                f"WORKER_CONCURRENCY must be 1 with WORKER_POOL=solo (got {self.worker_concurrency}): a solo "
                "worker runs one task at a time; scale with replicas, or set WORKER_POOL=prefork"
            )
        if (
            self.broker_url is None
            and self.rabbitmq_service_service_host
            and self.rabbitmq_password is None
        ):
            raise ValueError(
                "RABBITMQ_PASSWORD is required when RABBITMQ_SERVICE_SERVICE_HOST is set "
                "(a cluster broker never uses the guest account)"
            )
        if self.broker_url is not None:
            scheme = urlsplit(self.broker_url.get_secret_value()).scheme
            if scheme not in {"amqp", "amqps", "pyamqp", "memory"}:
                raise ValueError("BROKER_URL must be an amqp:// or amqps:// URL")
        return self

    @property
    def broker(self) -> str:
        """The broker URL, with the password in it: for Celery and kombu only, never for logs."""
        if self.broker_url is not None:
            return self.broker_url.get_secret_value()
        host = self.rabbitmq_service_service_host or "localhost"
        password = self.rabbitmq_password.get_secret_value() if self.rabbitmq_password else "guest"
        userinfo = f"{quote(self.rabbitmq_username, safe='')}:{quote(password, safe='')}"
        vhost = quote(self.rabbitmq_vhost, safe="")
        return f"amqp://{userinfo}@{host}:{self.rabbitmq_service_service_port}/{vhost}"

    @property
    def producer_period(self) -> float:
        """Seconds between two dispatches: 1/PRODUCER_RATE when set, else PRODUCER_INTERVAL."""
        return 1.0 / self.producer_rate if self.producer_rate is not None else self.producer_interval

    @property
    def broker_display(self) -> str:
        """The broker URL with the password masked, safe to log."""
        return mask_url(self.broker)

    @property
    def flower_auth(self) -> str | None:
        return self.flower_basic_auth.get_secret_value() if self.flower_basic_auth else None


def _describe(error: Mapping[str, object]) -> str:
    location = error.get("loc") or ()
    assert isinstance(location, tuple)
    variable = str(location[0]).upper() if location else ""
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not variable:
        return message
    if variable in SECRET_VARIABLES or variable in QUOTING_VARIABLES or "input" not in error:
        return f"{variable}: {message}"
    return f"{variable}: {message} (got {error['input']!r})"


def load_settings() -> Settings:
    """Read and validate the settings from the process environment; raise ConfigError naming every bad
    variable."""
    # A setting set only under its former name: passed on under the new one (init values win over the
    # environment, and the new name, when set, is not in ``renamed``).
    renamed: dict[str, Any] = {BY_ENV[env].field: value for env, value in renamed_values(os.environ).items()}
    try:
        return Settings(**renamed)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors(include_url=False))
        raise ConfigError(f"invalid configuration: {problems}") from None
