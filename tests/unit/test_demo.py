"""The demo's decisions that need no running services: ports, credentials, environment, the install hint."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

import pytest

import taskqueue.demo as demo
from taskqueue.config import load_settings
from tests.support.processes import VENV_BIN


def test_first_free_port_skips_a_busy_one() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert demo.first_free_port(port) != port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    assert demo.first_free_port(free) == free


def test_generated_credentials_are_printed_configured_ones_not(clean_env: pytest.MonkeyPatch) -> None:
    auth, password = demo.flower_credentials(load_settings())
    assert password and auth == f"{demo.DEMO_USER}:{password}" and len(password) >= 12
    clean_env.setenv("FLOWER_BASIC_AUTH", "ops:kept-secret")
    assert demo.flower_credentials(load_settings()) == ("ops:kept-secret", None)


def test_child_env_is_loopback_flower_with_auth(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("FLOWER_URL_PREFIX", "/x/")
    clean_env.setenv("FLOWER_ALLOW_UNAUTHENTICATED", "true")
    env = demo.child_env(load_settings(), "amqp://guest:guest@127.0.0.1:5/", tmp_path, 5600, "u:p", 2.0)
    assert env["BROKER_URL"] == "amqp://guest:guest@127.0.0.1:5/"
    flower = (env["FLOWER_ADDRESS"], env["FLOWER_PORT"], env["FLOWER_BASIC_AUTH"])
    assert flower == ("127.0.0.1", "5600", "u:p")
    assert env["PRODUCER_INTERVAL"] == "2.0"
    assert env["WORKER_HEALTH_FILE"].startswith(str(tmp_path))
    assert "FLOWER_URL_PREFIX" not in env and "FLOWER_ALLOW_UNAUTHENTICATED" not in env


def test_no_broker_and_no_rabbitmq_server_says_what_to_install(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("BROKER_URL", "amqp://guest:guest@127.0.0.1:1//")
    clean_env.setattr(demo, "find_rabbitmq_server", lambda: None)
    before = signal.getsignal(signal.SIGINT)
    assert demo.run_demo(load_settings(), demo.DemoOptions(duration=1)) == 1
    err = capsys.readouterr().err
    assert "apt-get install rabbitmq-server" in err and "BROKER_URL" in err
    assert signal.getsignal(signal.SIGINT) is before, "the demo must restore the signal handlers"


def test_taskqueue_command_is_the_console_script_next_to_python() -> None:
    assert demo.taskqueue_command() == [str(VENV_BIN / "taskqueue")]


def test_taskqueue_command_is_the_module_without_the_console_script(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    python = tmp_path / "bin" / "python"  # no taskqueue beside it
    monkeypatch.setattr(sys, "executable", str(python))
    assert demo.taskqueue_command() == [str(python), "-m", "taskqueue.cli"]
