"""Health logic: heartbeat files written by the test, judged by the probe; the probe's import path."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskqueue.cli import main
from taskqueue.config import ProbeSettings, Secret, load_probe_settings
from taskqueue.health import HealthResult, check_flower, check_producer, check_worker, flower_healthcheck_url
from taskqueue.heartbeat import (
    BROKER_BLOCKED,
    BROKER_UNAVAILABLE,
    CONSUMING,
    DISCONNECTED,
    NOT_CONSUMING,
    PUBLISHING,
    STARTING,
    STOPPED,
    HeartbeatError,
    HeartbeatWriter,
    process_alive,
    read_heartbeat,
    write_heartbeat,
)
from tests.support.ports import free_port
from tests.support.waiting import wait_until


@pytest.fixture(autouse=True)
def _no_runtime_variables(clean_env: pytest.MonkeyPatch) -> None:
    """load_probe_settings() below must not pick anything up from the developer's shell."""


def _settings(path: Path) -> ProbeSettings:
    return ProbeSettings(worker_health_file=path, health_max_age=30)


def _write(path: Path, **fields: object) -> None:
    beat = {"state": CONSUMING, "pid": os.getpid(), "hostname": os.uname().nodename, "time": time.time(),
            "detail": "", "queues": ["q"]}
    beat.update(fields)
    path.write_text(json.dumps(beat))


def test_fresh_consuming_heartbeat_is_healthy(tmp_path: Path) -> None:
    path = tmp_path / "hb"
    write_heartbeat(path, CONSUMING, queues=["work"])
    result = check_worker(_settings(path))
    assert result.healthy, result.reason
    assert "consuming work" in result.reason


def test_missing_file(tmp_path: Path) -> None:
    result = check_worker(_settings(tmp_path / "none"))
    assert not result.healthy
    assert "no heartbeat file" in result.reason


def test_stale_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "hb"
    _write(path, time=time.time() - 45)
    result = check_worker(_settings(path))
    assert not result.healthy
    assert result.reason.startswith("heartbeat is 45s old (max 30s)")


def test_age_limit_is_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "hb"
    _write(path, time=1000.0)
    assert check_worker(_settings(path), now=1030.0).healthy
    assert not check_worker(_settings(path), now=1030.5).healthy


@pytest.mark.parametrize(
    ("state", "detail", "expected"),
    [
        (NOT_CONSUMING, "connected but not consuming queue(s) q", "is not-consuming: connected but not"),
        (DISCONNECTED, "broker connection lost", "is disconnected: broker connection lost"),
        (STOPPED, "worker shutting down", "is stopped: worker shutting down"),
        ("starting", "", "is starting"),
    ],
)
def test_fresh_but_not_consuming(tmp_path: Path, state: str, detail: str, expected: str) -> None:
    path = tmp_path / "hb"
    write_heartbeat(path, state, detail=detail)
    result = check_worker(_settings(path))
    assert not result.healthy
    assert expected in result.reason


def test_dead_pid(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    path = tmp_path / "hb"
    _write(path, pid=process.pid)
    result = check_worker(_settings(path))
    assert not result.healthy
    assert f"worker process {process.pid} is gone" in result.reason


def test_defunct_pid_counts_as_gone(tmp_path: Path) -> None:
    # A killed worker not yet reaped by its parent is a zombie: signal 0 succeeds, yet it is dead.
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_until(lambda: not process_alive(process.pid), timeout=10, what="child to exit")
        path = tmp_path / "hb"
        _write(path, pid=process.pid)
        assert "is gone" in check_worker(_settings(path)).reason
    finally:
        process.wait()


def test_pid_of_another_host_is_not_checked(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    path = tmp_path / "hb"
    _write(path, pid=process.pid, hostname="another-pod")
    assert check_worker(_settings(path)).healthy


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"state": "consuming"}', '{"state": "dancing", '
                                     '"pid": 1, "hostname": "h", "time": 0}'])
def test_garbage_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "hb"
    path.write_text(content)
    result = check_worker(_settings(path))
    assert not result.healthy
    assert str(path) in result.reason


def test_heartbeat_roundtrip_and_atomic_write(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "hb"
    write_heartbeat(path, NOT_CONSUMING, detail="why", queues=["a", "b"])
    beat = read_heartbeat(path)
    assert beat is not None
    assert (beat.state, beat.pid, beat.detail, beat.queues) == (NOT_CONSUMING, os.getpid(), "why", ["a", "b"])
    assert [p.name for p in path.parent.iterdir()] == ["hb"]  # no temporary file left behind
    path.write_text("{}")
    with pytest.raises(HeartbeatError):
        read_heartbeat(path)


def test_report_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert HealthResult("worker", True, "fine").report() == 0
    assert HealthResult("worker", False, "broken").report() == 1
    captured = capsys.readouterr()
    assert captured.out == "worker: ok: fine\n"
    assert captured.err == "worker: unhealthy: broken\n"


def test_cli_health_worker(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "hb"
    clean_env.setenv("WORKER_HEALTH_FILE", str(path))
    assert CliRunner().invoke(main, ["health", "worker"]).exit_code == 1
    write_heartbeat(path, CONSUMING, queues=["celery"])
    result = CliRunner().invoke(main, ["health", "worker"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("worker: ok:")


#: Modules a probe must never import: each costs tens of ms of CPU, on every probe of every pod.
HEAVY_MODULES = ("pydantic", "pydantic_settings", "celery", "kombu", "flower", "tornado", "requests",
                 "importlib.metadata")


@pytest.mark.parametrize(
    "check", [["worker"], ["flower"], ["producer"], ["producer", "--liveness"]], ids=" ".join
)
def test_probe_import_path_is_light(check: list[str], tmp_path: Path) -> None:
    # The real command, in a fresh interpreter: fails if anyone puts a heavy import back on its path.
    code = (
        "import sys\n"
        "from taskqueue.cli import main\n"
        f"try:\n    main(['health', *{check!r}])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "WORKER_HEALTH_FILE": str(tmp_path / "hb"),
           "FLOWER_PORT": str(free_port()), "PRODUCER_HEALTH_FILE": str(tmp_path / "producer-hb")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "unhealthy" in out.stderr  # the check ran (no heartbeat file, no Flower)
    assert out.stdout.strip() == "[]"


# --- The producer's heartbeat: alive (liveness) vs publishing (readiness) ---------------------------------


def _producer(path: Path) -> ProbeSettings:
    return ProbeSettings(producer_health_file=path, health_max_age=30)


def test_fresh_publishing_producer_is_live_and_ready(tmp_path: Path) -> None:
    path = tmp_path / "producer.hb"
    write_heartbeat(path, PUBLISHING, queues=["work"])
    for liveness in (False, True):
        result = check_producer(_producer(path), liveness=liveness)
        assert result.healthy, result.reason
        assert result.reason.startswith(f"producer {os.getpid()} publishing to work, heartbeat ")


@pytest.mark.parametrize("state", [BROKER_UNAVAILABLE, BROKER_BLOCKED, STARTING])
def test_producer_waiting_for_the_broker_is_alive_but_not_ready(tmp_path: Path, state: str) -> None:
    # Restarting a producer during a broker outage brings nothing back: liveness passes. Readiness fails,
    # so the outage shows (READY 0/1) and a rollout waits.
    path = tmp_path / "producer.hb"
    write_heartbeat(path, state, detail="2 publish(es) failed, backing off")
    ready = check_producer(_producer(path))
    assert not ready.healthy
    assert ready.reason == f"producer {os.getpid()} is {state}: 2 publish(es) failed, backing off"
    alive = check_producer(_producer(path), liveness=True)
    assert alive.healthy, alive.reason
    assert f"alive, {state} (2 publish(es) failed, backing off)" in alive.reason


@pytest.mark.parametrize("liveness", [False, True])
def test_stopped_producer_fails_both_probes(tmp_path: Path, liveness: bool) -> None:
    path = tmp_path / "producer.hb"
    write_heartbeat(path, STOPPED, detail="producer exited (SIGTERM)")
    result = check_producer(_producer(path), liveness=liveness)
    assert not result.healthy
    assert "is stopped: producer exited (SIGTERM)" in result.reason


@pytest.mark.parametrize("liveness", [False, True])
def test_producer_missing_stale_gone_or_foreign(tmp_path: Path, liveness: bool) -> None:
    path = tmp_path / "producer.hb"
    missing = check_producer(_producer(path), liveness=liveness)
    assert not missing.healthy
    assert missing.reason == f"no heartbeat file {path} (producer not started yet?)"

    _write(path, state=BROKER_UNAVAILABLE, time=time.time() - 45)  # a wedged loop: no refresh
    stale = check_producer(_producer(path), liveness=liveness)
    assert not stale.healthy
    assert stale.reason.startswith("heartbeat is 45s old (max 30s): producer dead or wedged")

    _write(path, state=PUBLISHING, time=1000.0)
    assert check_producer(_producer(path), liveness=liveness, now=1030.0).healthy
    assert not check_producer(_producer(path), liveness=liveness, now=1030.5).healthy

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    _write(path, state=PUBLISHING, pid=process.pid)
    gone = check_producer(_producer(path), liveness=liveness)
    assert not gone.healthy
    assert gone.reason == f"producer process {process.pid} is gone (last state publishing)"

    # A worker's heartbeat is no producer's, whatever the probe.
    write_heartbeat(path, CONSUMING, queues=["q"])
    assert not check_producer(_producer(path), liveness=liveness).healthy


def test_producer_and_worker_files_are_separate() -> None:
    settings = load_probe_settings({})
    assert settings.producer_health_file != settings.worker_health_file
    assert settings.producer_health_file == Path("/tmp/taskqueue-producer.heartbeat")


def test_cli_health_producer(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "producer.hb"
    clean_env.setenv("PRODUCER_HEALTH_FILE", str(path))
    clean_env.setenv("WORKER_HEALTH_FILE", str(tmp_path / "worker.hb"))
    missing = CliRunner().invoke(main, ["health", "producer"])
    assert missing.exit_code == 1
    assert missing.output == f"producer: unhealthy: no heartbeat file {path} (producer not started yet?)\n"
    write_heartbeat(path, BROKER_UNAVAILABLE, detail="backing off")
    assert CliRunner().invoke(main, ["health", "producer"]).exit_code == 1
    alive = CliRunner().invoke(main, ["health", "producer", "--liveness"])
    assert alive.exit_code == 0, alive.output
    assert alive.output.startswith("producer: ok: producer ")
    write_heartbeat(path, PUBLISHING, queues=["celery"])
    assert CliRunner().invoke(main, ["health", "producer"]).exit_code == 0
    assert CliRunner().invoke(main, ["health", "worker"]).exit_code == 1  # the worker's file is not touched


def test_heartbeat_writer_never_raises_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    writer = HeartbeatWriter(blocker / "hb", logging.getLogger("test.heartbeat"))  # parent is a file
    with caplog.at_level(logging.ERROR, logger="test.heartbeat"):
        assert writer.write(PUBLISHING) is False
        assert writer.write(PUBLISHING) is False
    assert len(caplog.records) == 1
    assert "cannot write heartbeat file" in caplog.records[0].getMessage()
    writer.path = tmp_path / "hb"
    assert writer.write(PUBLISHING, "fine", ["q"]) is True
    beat = read_heartbeat(writer.path)
    assert beat is not None and (beat.state, beat.detail, beat.queues) == (PUBLISHING, "fine", ["q"])


def test_flower_url() -> None:
    assert flower_healthcheck_url(ProbeSettings(flower_port=5555)) == "http://127.0.0.1:5555/healthcheck"
    settings = load_probe_settings({"FLOWER_PORT": "80", "FLOWER_URL_PREFIX": "/flower/"})
    assert flower_healthcheck_url(settings) == "http://127.0.0.1:80/flower/healthcheck"


def test_flower_down() -> None:
    result = check_flower(ProbeSettings(flower_port=free_port()))
    assert not result.healthy
    assert "does not answer" in result.reason


class _Flowerish(BaseHTTPRequestHandler):
    """Answers like Flower's /healthcheck under the prefix "flower"; 401 when the wrong auth is sent."""

    expected_auth = "Basic " + base64.b64encode(b"admin:pw").decode()

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected_auth:
            self.send_response(401)
        elif self.path == "/flower/healthcheck":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")
            return
        else:
            self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flowerish)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_flower_healthy_with_auth_and_prefix(http_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy configured in the pod must not capture the loopback probe.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    settings = ProbeSettings(flower_port=http_port, flower_url_prefix="flower",
                             flower_basic_auth=Secret("admin:pw,bob:other"))
    result = check_flower(settings)
    assert result.healthy, result.reason
    assert "pw" not in result.reason


def test_flower_http_error_is_unhealthy(http_port: int) -> None:
    result = check_flower(ProbeSettings(flower_port=http_port, flower_basic_auth=Secret("admin:wrong")))
    assert not result.healthy
    assert "HTTP 401" in result.reason
    assert "wrong" not in result.reason
