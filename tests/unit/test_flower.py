"""Flower option building: what ``taskqueue flower`` hands to Flower, and what it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from flower.command import is_flower_option

from taskqueue.config import ConfigError, load_settings
from taskqueue.flower import (
    FLOWER_EVENT_QUEUE_TTL,
    FlowerCommand,
    FlowerRefused,
    flower_command,
    is_loopback,
    monitor_app,
    redact,
    run_flower,
)

SECRET = "s3cret-Pa55"


def command(env: pytest.MonkeyPatch, port: int | None = None, **variables: str) -> FlowerCommand:
    for name, value in variables.items():
        env.setenv(name, value)
    return flower_command(load_settings(), port)


def options(cmd: FlowerCommand) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in cmd.argv)


def test_defaults_are_loopback_port_5555_and_capped(clean_env: pytest.MonkeyPatch) -> None:
    cmd = command(clean_env)
    opts = options(cmd)
    assert opts["port"] == "5555"
    assert opts["address"] == "127.0.0.1"
    # Stock Flower keeps 100 000 tasks (823 MB RSS measured); the default cap is ten times lower.
    assert int(opts["max_tasks"]) == 10000 < 100000
    assert opts["max_workers"] == "5000"
    assert "basic_auth" not in opts and "url_prefix" not in opts and "persistent" not in opts
    assert opts["conf"] == "/dev/null"
    assert cmd.url == "http://127.0.0.1:5555/"
    assert not cmd.authenticated


def test_port_option_wins_over_flower_port_env(clean_env: pytest.MonkeyPatch) -> None:
    assert options(command(clean_env, FLOWER_PORT="6000"))["port"] == "6000"
    cmd = command(clean_env, port=7000, FLOWER_PORT="6000")
    assert options(cmd)["port"] == "7000"
    assert cmd.url == "http://127.0.0.1:7000/"


def test_basic_auth_is_passed_but_never_shown(clean_env: pytest.MonkeyPatch) -> None:
    cmd = command(clean_env, FLOWER_BASIC_AUTH=f"admin:{SECRET}", FLOWER_ADDRESS="0.0.0.0")
    assert options(cmd)["basic_auth"] == f"admin:{SECRET}"
    assert cmd.authenticated
    for shown in (repr(cmd), str(cmd), cmd.summary()):
        assert SECRET not in shown
        assert "--basic_auth=***" in shown


def test_broker_api_is_passed_and_its_password_never_shown(clean_env: pytest.MonkeyPatch) -> None:
    url = f"http://monitor:{SECRET}@rabbitmq:15672/api/"
    cmd = command(clean_env, FLOWER_BROKER_API=url)
    assert options(cmd)["broker_api"] == url
    assert all(is_flower_option(arg) for arg in cmd.argv)
    for shown in (repr(cmd), cmd.summary()):
        assert SECRET not in shown
        assert "--broker_api=http://monitor:***@rabbitmq:15672/api/" in shown
    assert "broker_api" not in options(command(clean_env, FLOWER_BROKER_API=""))


def test_broker_api_must_be_an_http_url_and_is_not_echoed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FLOWER_BROKER_API", f"amqp://guest:{SECRET}@rabbitmq:5672//")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "FLOWER_BROKER_API" in str(error.value) and SECRET not in str(error.value)


def test_redact_masks_only_secrets() -> None:
    assert redact(["--port=1", f"--basic_auth=a:{SECRET},b:x"]) == ["--port=1", "--basic_auth=***"]


@pytest.mark.parametrize(("raw", "expected"), [("/flower/", "flower"), ("flower", "flower"),
                                                 ("//ops/flower//", "ops/flower")])
def test_url_prefix_is_stripped_of_slashes(clean_env: pytest.MonkeyPatch, raw: str, expected: str) -> None:
    cmd = command(clean_env, FLOWER_URL_PREFIX=raw)
    assert options(cmd)["url_prefix"] == expected
    assert cmd.url == f"http://127.0.0.1:5555/{expected}/"


def test_empty_url_prefix_is_omitted(clean_env: pytest.MonkeyPatch) -> None:
    assert "url_prefix" not in options(command(clean_env, FLOWER_URL_PREFIX="/"))


def test_persistence_sets_db_and_periodic_save(clean_env: pytest.MonkeyPatch) -> None:
    opts = options(command(clean_env, FLOWER_PERSISTENT="true", FLOWER_DB="/tmp/x/flower.db"))
    assert opts["persistent"] == "true"
    assert opts["db"] == "/tmp/x/flower.db"
    assert opts["state_save_interval"] == "60000"
    opts = options(command(clean_env, FLOWER_PERSISTENT="true", FLOWER_STATE_SAVE_INTERVAL="5000"))
    assert opts["state_save_interval"] == "5000"


def test_memory_caps_follow_the_settings(clean_env: pytest.MonkeyPatch) -> None:
    opts = options(command(clean_env, FLOWER_MAX_TASKS="500", FLOWER_MAX_WORKERS="20",
                           FLOWER_PURGE_OFFLINE_WORKERS="60"))
    assert (opts["max_tasks"], opts["max_workers"], opts["purge_offline_workers"]) == ("500", "20", "60")


def test_monitor_keeps_a_minute_of_event_backlog(clean_env: pytest.MonkeyPatch) -> None:
    # Celery's 5 s default made a busy Flower drop events (tasks missing from its list).
    app = monitor_app(load_settings())
    try:
        assert app.conf.event_queue_ttl == FLOWER_EVENT_QUEUE_TTL >= 60
    finally:
        app.close()


@pytest.mark.parametrize("address", ["0.0.0.0", "", "::", "10.1.2.3", "flower.example.com"])
def test_refuses_unauthenticated_beyond_loopback(clean_env: pytest.MonkeyPatch, address: str) -> None:
    with pytest.raises(FlowerRefused) as info:
        command(clean_env, FLOWER_ADDRESS=address)
    message = str(info.value)
    assert "without authentication" in message
    assert "FLOWER_BASIC_AUTH" in message and "FLOWER_ALLOW_UNAUTHENTICATED=true" in message
    assert "\n" not in message


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_unauthenticated_is_allowed_on_loopback(clean_env: pytest.MonkeyPatch, address: str) -> None:
    assert options(command(clean_env, FLOWER_ADDRESS=address))["address"] == address


def test_unauthenticated_is_allowed_when_explicit(clean_env: pytest.MonkeyPatch) -> None:
    cmd = command(clean_env, FLOWER_ADDRESS="0.0.0.0", FLOWER_ALLOW_UNAUTHENTICATED="true")
    assert not cmd.authenticated
    assert "NO authentication" in cmd.summary()


def test_auth_allows_any_address(clean_env: pytest.MonkeyPatch) -> None:
    assert command(clean_env, FLOWER_ADDRESS="0.0.0.0", FLOWER_BASIC_AUTH=f"a:{SECRET}").authenticated


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("example.com")


def test_run_flower_refusal_is_one_line_and_exits_nonzero(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("FLOWER_ADDRESS", "0.0.0.0")
    assert run_flower(load_settings()) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("taskqueue flower: refusing to serve Flower without authentication on 0.0.0.0")


def test_every_option_is_one_flower_knows(clean_env: pytest.MonkeyPatch) -> None:
    # Flower silently drops an argument it does not know: a typo would disable a cap or the auth.
    cmd = command(clean_env, FLOWER_BASIC_AUTH=f"a:{SECRET}", FLOWER_URL_PREFIX="p", FLOWER_PERSISTENT="1")
    assert all(is_flower_option(arg) for arg in cmd.argv)


def test_flower_parses_the_options_as_meant(clean_env: pytest.MonkeyPatch) -> None:
    """Flower's own parser, in a child process (its options are process-global), reads what we meant."""
    cmd = command(clean_env, FLOWER_BASIC_AUTH=f"a:{SECRET},b:pw", FLOWER_URL_PREFIX="/flower/",
                  FLOWER_PERSISTENT="true", FLOWER_DB="/tmp/f.db", FLOWER_MAX_TASKS="123")
    script = (
        "import json, sys\n"
        "from flower.command import apply_options\n"
        "from flower.options import options as o\n"
        "apply_options('flower', sys.argv[1:])\n"
        "print(json.dumps({k: getattr(o, k) for k in ('port', 'address', 'basic_auth', 'url_prefix',"
        " 'persistent', 'db', 'state_save_interval', 'max_tasks', 'max_workers', 'purge_offline_workers',"
        " 'enable_events')}))\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLOWER_")}
    out = subprocess.run([sys.executable, "-c", script, *cmd.argv], env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    parsed = json.loads(out.strip().splitlines()[-1])
    assert parsed == {
        "port": 5555, "address": "127.0.0.1", "basic_auth": [f"a:{SECRET}", "b:pw"], "url_prefix": "flower",
        "persistent": True, "db": "/tmp/f.db", "state_save_interval": 60000, "max_tasks": 123,
        "max_workers": 5000, "purge_offline_workers": 3600, "enable_events": True,
    }


def test_flower_environment_is_scrubbed(clean_env: pytest.MonkeyPatch) -> None:
    from taskqueue.flower import _scrub_flower_environment

    clean_env.setenv("FLOWER_MAX_TASKS", "100000")
    clean_env.setenv("FLOWER_BASIC_AUTH", "")
    clean_env.setenv("FLOWER_UNRELATED_THING", "kept")
    _scrub_flower_environment()
    assert "FLOWER_MAX_TASKS" not in os.environ and "FLOWER_BASIC_AUTH" not in os.environ
    assert os.environ["FLOWER_UNRELATED_THING"] == "kept"
