"""Configuration: every bad variable stops the process with a message naming it, never a secret."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskqueue.cli import main
from taskqueue.config import (
    ConfigError,
    ProbeSettings,
    Secret,
    Settings,
    load_probe_settings,
    load_settings,
    mask_url,
)

SECRET = "s3cr3t-P@ss/word"


def _error(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.broker == "amqp://guest:guest@localhost:5672/%2F"
    assert settings.result_backend == "rpc://"
    assert settings.queue_name == "celery"
    assert settings.queue_type == "quorum"
    worker = (settings.worker_pool, settings.worker_concurrency, settings.worker_prefetch_multiplier)
    assert worker == ("solo", 1, 16)
    assert settings.worker_broker_heartbeat == 30
    assert (settings.task_time_limit, settings.task_soft_time_limit) == (300, 240)
    assert settings.producer_interval == 5.0
    assert (settings.health_interval, settings.health_max_age) == (5.0, 30.0)
    assert not settings.worker_mingle and not settings.worker_gossip
    assert settings.worker_task_modules == ()  # a production worker registers only taskqueue.tasks


def test_worker_task_modules_are_a_comma_separated_list(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("WORKER_TASK_MODULES", " my.tasks , other_tasks,, ")
    assert load_settings().worker_task_modules == ("my.tasks", "other_tasks")
    clean_env.setenv("WORKER_TASK_MODULES", "")
    assert load_settings().worker_task_modules == ()


def test_broker_url_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BROKER_URL", "amqp://u:p@broker:5672/vh")
    clean_env.setenv("RABBITMQ_SERVICE_SERVICE_HOST", "ignored")
    clean_env.setenv("RABBITMQ_PASSWORD", "ignored")
    assert load_settings().broker == "amqp://u:p@broker:5672/vh"


def test_broker_composed_from_service_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RABBITMQ_SERVICE_SERVICE_HOST", "rabbitmq-service")
    clean_env.setenv("RABBITMQ_SERVICE_SERVICE_PORT", "5673")
    clean_env.setenv("RABBITMQ_USERNAME", "taskqueue")
    clean_env.setenv("RABBITMQ_PASSWORD", SECRET)
    clean_env.setenv("RABBITMQ_VHOST", "prod")
    settings = load_settings()
    # Special characters of the password are quoted in the URL.
    assert settings.broker == "amqp://taskqueue:s3cr3t-P%40ss%2Fword@rabbitmq-service:5673/prod"
    assert settings.broker_display == "amqp://taskqueue:***@rabbitmq-service:5673/prod"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"RABBITMQ_SERVICE_SERVICE_PORT": "0"},
            "RABBITMQ_SERVICE_SERVICE_PORT: Input should be greater than or equal to 1",
        ),
        (
            {"RABBITMQ_SERVICE_SERVICE_PORT": "70000"},
            "RABBITMQ_SERVICE_SERVICE_PORT: Input should be less than or equal to 65535",
        ),
        (
            {"RABBITMQ_SERVICE_SERVICE_PORT": "amqp"},
            "RABBITMQ_SERVICE_SERVICE_PORT: Input should be a valid integer",
        ),
        ({"QUEUE_NAME": ""}, "QUEUE_NAME: String should have at least 1 character"),
        ({"QUEUE_NAME": "bad queue!"}, "QUEUE_NAME: String should match pattern"),
        ({"QUEUE_NAME": "q" * 244}, "QUEUE_NAME: String should have at most 243 characters"),
        ({"QUEUE_TYPE": "stream"}, "QUEUE_TYPE: Input should be 'quorum' or 'classic'"),
        ({"QUEUE_DELIVERY_LIMIT": "0"}, "QUEUE_DELIVERY_LIMIT: Input should be greater than 0"),
        ({"QUEUE_DELIVERY_LIMIT": "many"}, "QUEUE_DELIVERY_LIMIT: Input should be a valid integer"),
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY: Input should be greater than 0"),
        ({"WORKER_CONCURRENCY": "two"}, "WORKER_CONCURRENCY: Input should be a valid integer"),
        ({"WORKER_PREFETCH_MULTIPLIER": "-1"}, "WORKER_PREFETCH_MULTIPLIER: Input should be greater than 0"),
        ({"WORKER_MINGLE": "maybe"}, "WORKER_MINGLE: Input should be a valid boolean"),
        ({"WORKER_GOSSIP": "maybe"}, "WORKER_GOSSIP: Input should be a valid boolean"),
        ({"WORKER_REMOTE_CONTROL": "off-ish"}, "WORKER_REMOTE_CONTROL: Input should be a valid boolean"),
        ({"TASK_TIME_LIMIT": "0"}, "TASK_TIME_LIMIT: Input should be greater than 0"),
        ({"TASK_SOFT_TIME_LIMIT": "1.5"}, "TASK_SOFT_TIME_LIMIT: Input should be a valid integer"),
        (
            {"TASK_TIME_LIMIT": "60", "TASK_SOFT_TIME_LIMIT": "60"},
            "TASK_SOFT_TIME_LIMIT must be below TASK_TIME_LIMIT (60 >= 60)",
        ),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL: String should match pattern"),
        (
            {"WORKER_TASK_MODULES": "good.tasks, bad-name, 1st,ok"},
            "WORKER_TASK_MODULES: not a Python module path: 'bad-name', '1st' (write pkg.tasks) "
            "(got 'good.tasks, bad-name, 1st,ok')",
        ),
        ({"PRODUCER_INTERVAL": "0"}, "PRODUCER_INTERVAL: Input should be greater than 0"),
        ({"PRODUCER_INTERVAL": "soon"}, "PRODUCER_INTERVAL: Input should be a valid number"),
        ({"HEALTH_INTERVAL": "-5"}, "HEALTH_INTERVAL: Input should be greater than 0"),
        ({"HEALTH_MAX_AGE": "0"}, "HEALTH_MAX_AGE: Input should be greater than 0"),
        ({"BROKER_CONNECTION_TIMEOUT": "0"}, "BROKER_CONNECTION_TIMEOUT: Input should be greater than 0"),
        ({"FLOWER_PORT": "99999"}, "FLOWER_PORT: Input should be less than or equal to 65535"),
        ({"FLOWER_PERSISTENT": "perhaps"}, "FLOWER_PERSISTENT: Input should be a valid boolean"),
        ({"FLOWER_MAX_TASKS": "0"}, "FLOWER_MAX_TASKS: Input should be greater than 0"),
        ({"FLOWER_MAX_WORKERS": "many"}, "FLOWER_MAX_WORKERS: Input should be a valid integer"),
        (
            {"FLOWER_ALLOW_UNAUTHENTICATED": "sure"},
            "FLOWER_ALLOW_UNAUTHENTICATED: Input should be a valid boolean",
        ),
        (
            {"RABBITMQ_SERVICE_SERVICE_HOST": "rabbitmq"},
            "RABBITMQ_PASSWORD is required when RABBITMQ_SERVICE_SERVICE_HOST",
        ),
    ],
)
def test_bad_variable_is_named(
    clean_env: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    message = _error(clean_env, **variables)
    assert message.startswith("invalid configuration: ")
    assert expected in message


def test_every_bad_variable_is_reported_at_once(clean_env: pytest.MonkeyPatch) -> None:
    message = _error(clean_env, WORKER_CONCURRENCY="0", LOG_LEVEL="loud", FLOWER_PORT="0")
    for name in ("WORKER_CONCURRENCY", "LOG_LEVEL", "FLOWER_PORT"):
        assert name in message


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"BROKER_URL": f"redis://user:{SECRET}@host:6379/0"},
            "BROKER_URL must be an amqp:// or amqps:// URL",
        ),
        ({"FLOWER_BASIC_AUTH": SECRET}, "FLOWER_BASIC_AUTH: must be user:password"),
        ({"FLOWER_BASIC_AUTH": f"admin:{SECRET},bob"}, "FLOWER_BASIC_AUTH: must be user:password"),
    ],
)
def test_secret_never_in_error(
    clean_env: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    message = _error(clean_env, **variables)
    assert expected in message
    assert SECRET not in message


def test_password_in_error_of_another_variable_is_not_echoed(clean_env: pytest.MonkeyPatch) -> None:
    message = _error(clean_env, RABBITMQ_PASSWORD=SECRET, WORKER_CONCURRENCY="x")
    assert "WORKER_CONCURRENCY" in message
    assert SECRET not in message


@pytest.mark.parametrize("via", ["BROKER_URL", "RABBITMQ_PASSWORD"])
def test_password_never_in_repr_or_display(clean_env: pytest.MonkeyPatch, via: str) -> None:
    if via == "BROKER_URL":
        clean_env.setenv("BROKER_URL", f"amqp://taskqueue:{SECRET}@rabbitmq:5672//")
    else:
        clean_env.setenv("RABBITMQ_SERVICE_SERVICE_HOST", "rabbitmq")
        clean_env.setenv("RABBITMQ_PASSWORD", SECRET)
    settings = load_settings()
    encoded = SECRET.replace("@", "%40").replace("/", "%2F")
    for text in (repr(settings), str(settings), settings.broker_display, settings.model_dump_json()):
        assert SECRET not in text
        assert encoded not in text
    assert "***" in settings.broker_display
    assert SECRET in settings.broker or encoded in settings.broker  # Celery still gets it


def test_mask_url() -> None:
    assert mask_url("amqp://user:pw@host:5672//") == "amqp://user:***@host:5672//"
    assert mask_url("amqp://host//") == "amqp://host//"


def test_url_prefix_slashes_stripped(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FLOWER_URL_PREFIX", "/flower/")
    assert load_settings().flower_url_prefix == "flower"


def test_settings_are_frozen(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.queue_name = "other"


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        (["worker"], "WORKER_CONCURRENCY"),
        (["produce"], "WORKER_CONCURRENCY"),
        (["health", "worker"], "HEALTH_MAX_AGE"),
        (["health", "producer"], "HEALTH_MAX_AGE"),
        (["health", "producer", "--liveness"], "HEALTH_MAX_AGE"),
        (["health", "flower"], "FLOWER_PORT"),
    ],
)
def test_cli_stops_with_one_line_naming_the_variable(
    clean_env: pytest.MonkeyPatch, command: list[str], variable: str
) -> None:
    clean_env.setenv("RABBITMQ_PASSWORD", SECRET)
    clean_env.setenv(variable, "none")
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2
    assert result.output.startswith(f"taskqueue: invalid configuration: {variable}: ")
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_probe_checks_only_what_it_reads(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A bad WORKER_CONCURRENCY stops the worker at start (no heartbeat: the probe then fails for that
    # reason); the probe itself neither reads nor validates it.
    clean_env.setenv("WORKER_CONCURRENCY", "none")
    clean_env.setenv("WORKER_HEALTH_FILE", str(tmp_path / "none"))
    result = CliRunner().invoke(main, ["health", "worker"])
    assert result.exit_code == 1
    assert "no heartbeat file" in result.output


# --- ProbeSettings (the probes' stdlib loader) agrees with Settings --------------------------------------

PROBE_FIELDS = [field.name for field in dataclasses.fields(ProbeSettings)]


def _plain(value: object) -> object:
    """SecretStr and Secret compare by their secret value."""
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def test_probe_fields_exist_in_settings_with_the_same_defaults(clean_env: pytest.MonkeyPatch) -> None:
    full, probe = load_settings(), load_probe_settings()
    assert set(PROBE_FIELDS) <= set(Settings.model_fields)
    assert {name: _plain(getattr(probe, name)) for name in PROBE_FIELDS} == {
        name: _plain(getattr(full, name)) for name in PROBE_FIELDS
    }
    assert probe == ProbeSettings()
    assert probe.flower_auth is None is full.flower_auth


NUMBERS = ["30", " 30 ", "30.5", "1e1", "1E2", "inf", "-inf", "Infinity", "nan", "-nan", "0", "-0", "-1",
           "0.0", "", " ", "abc", "1_0", "1__0", "_10", "10_", "1_0.5", "0x10", "0b101", "+5", "05555",
           "\u0663", "1,5", "1 0", "30\n", "\t30", "1e400", "1e3", "1.5e", "5555.0", "5555.00", "5555.",
           ".5", "5555.5", "5_555.0", "65535", "65536", "99999999999999999999", "1"]
PROBE_CASES = (
    [("HEALTH_MAX_AGE", value) for value in NUMBERS]
    + [("FLOWER_PORT", value) for value in NUMBERS]
    + [("FLOWER_URL_PREFIX", value) for value in ["", "/", "flower", "/flower/", "//a/b//"]]
    + [("WORKER_HEALTH_FILE", value) for value in ["/tmp/hb", "relative/hb", ""]]
    + [("PRODUCER_HEALTH_FILE", value) for value in ["/tmp/producer-hb", "relative/hb", ""]]
    + [("BEAT_HEALTH_FILE", value) for value in ["/tmp/beat-hb", "relative/hb", ""]]
    + [("FLOWER_BASIC_AUTH", value) for value in ["", "admin:pw", "a:b,c:d", SECRET, "admin:", ":pw",
                                                   f"admin:{SECRET},bob", "a:b:c"]]
)


@pytest.mark.parametrize(("variable", "value"), PROBE_CASES)
def test_probe_settings_agree_with_settings(clean_env: pytest.MonkeyPatch, variable: str, value: str) -> None:
    """The same value gives the same setting, or the same error message, in both loaders."""
    clean_env.setenv(variable, value)
    outcomes: list[tuple[str, object]] = []
    for load in (load_settings, load_probe_settings):
        try:
            settings = load()
        except ConfigError as exc:
            outcomes.append(("error", str(exc)))
        else:
            outcomes.append(("ok", _plain(getattr(settings, variable.lower()))))
    assert outcomes[0] == outcomes[1]
    if outcomes[0][0] == "error":
        assert SECRET not in str(outcomes[0][1])


def test_probe_settings_report_every_bad_variable_in_the_same_order(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in {"FLOWER_BASIC_AUTH": SECRET, "FLOWER_PORT": "0", "HEALTH_MAX_AGE": "x"}.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as full:
        load_settings()
    with pytest.raises(ConfigError) as probe:
        load_probe_settings()
    assert str(probe.value) == str(full.value)
    assert SECRET not in str(probe.value)


def test_probe_settings_read_names_case_insensitively_like_settings(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("health_max_age", "7")
    assert load_probe_settings().health_max_age == load_settings().health_max_age == 7.0


def test_probe_secret_never_in_repr(clean_env: pytest.MonkeyPatch) -> None:
    settings = load_probe_settings({"FLOWER_BASIC_AUTH": f"admin:{SECRET}"})
    assert settings.flower_auth == f"admin:{SECRET}"
    assert SECRET not in repr(settings) and SECRET not in str(settings.flower_basic_auth)
    assert Secret("a") == Secret("a") != Secret("b")
