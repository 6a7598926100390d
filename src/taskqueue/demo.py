"""``taskqueue demo``: the original example on one machine, in one command, leaving nothing behind.

Broker: the configured one if it answers, else a private ``rabbitmq-server`` node (see private_broker),
else a message saying what to install. Then ``taskqueue worker``, ``taskqueue flower`` (loopback) and
``taskqueue produce`` as child processes. Ctrl-C / SIGTERM / ``--duration`` stop them all by PID, in
reverse order, with a bounded wait escalating to SIGKILL (see children).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from taskqueue.children import Child, start_child, stop_children
from taskqueue.config import Settings
from taskqueue.private_broker import (
    INSTALL_HINT,
    PrivateBroker,
    PrivateBrokerError,
    find_rabbitmq_server,
    first_bindable,
    start_private_broker,
)

#: Seconds to wait for the configured broker to answer before starting a private one.
BROKER_PROBE_TIMEOUT = 3.0
#: Seconds Flower may take to answer its health check.
FLOWER_START_TIMEOUT = 60.0
#: Flower user when the demo generates the credentials.
DEMO_USER = "demo"


class DemoError(RuntimeError):
    """The demo cannot run; the message says why."""


class StopRequest:
    """Records SIGINT/SIGTERM instead of raising mid-operation: every wait loop checks it."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> dict[int, object]:
        """Install the handlers; returns the previous ones, for ``restore``."""
        return {signum: signal.signal(signum, self._handle) for signum in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def restore(previous: dict[int, object]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None


@dataclass(frozen=True)
class DemoOptions:
    flower_port: int | None = None
    interval: float | None = None
    duration: float | None = None


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def broker_answers(url: str, timeout: float = BROKER_PROBE_TIMEOUT) -> bool:
    """True if an AMQP broker accepts a connection at ``url``; raises DemoError if it refuses the login."""
    from amqp.exceptions import AccessRefused
    from kombu.connection import Connection

    try:
        with Connection(url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except AccessRefused:
        raise DemoError("the broker answers but refuses the login: check BROKER_URL or RABBITMQ_*") from None
    except Exception:  # refused, unreachable, timed out: no usable broker there
        return False
    return True


def first_free_port(start: int, host: str = "127.0.0.1", tries: int = 100) -> int:
    port = first_bindable(range(start, min(start + tries, 65536)), host)
    if port is None:
        raise DemoError(f"no free port for Flower in {start}..{start + tries - 1}: use --flower-port")
    return port


def taskqueue_command() -> list[str]:
    """How to run ``taskqueue``: the console script next to this Python, else the module."""
    script = Path(sys.executable).with_name("taskqueue")
    return [str(script)] if script.exists() else [sys.executable, "-m", "taskqueue.cli"]


def flower_credentials(settings: Settings) -> tuple[str, str | None]:
    """The FLOWER_BASIC_AUTH to give Flower, and the password to print (only one the demo generated).

    Flower's REST API answers 401 without auth even on loopback, so the demo always sets credentials.
    """
    if settings.flower_auth:
        return settings.flower_auth, None
    password = secrets.token_urlsafe(12)
    return f"{DEMO_USER}:{password}", password


def child_env(settings: Settings, broker_url: str, run_dir: Path, flower_port: int, flower_auth: str,
              interval: float, broker_api: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("FLOWER_URL_PREFIX", "FLOWER_ALLOW_UNAUTHENTICATED", "FLOWER_PERSISTENT"):
        env.pop(name, None)  # the demo's Flower: plain, loopback, authenticated, in memory
    env.update(
        BROKER_URL=broker_url,
        QUEUE_NAME=settings.queue_name,
        PRODUCER_INTERVAL=str(interval),
        WORKER_HEALTH_FILE=str(run_dir / "worker.heartbeat"),
        PRODUCER_HEALTH_FILE=str(run_dir / "producer.heartbeat"),
        FLOWER_ADDRESS="127.0.0.1",
        FLOWER_PORT=str(flower_port),
        FLOWER_BASIC_AUTH=flower_auth,
        FLOWER_DB=str(run_dir / "flower.db"),
        PYTHONUNBUFFERED="1",
    )
    if broker_api is not None:  # the private node's management API: Flower's Broker tab shows the queue
        env["FLOWER_BROKER_API"] = broker_api
    return env


def wait_for_flower(flower: Child, port: int, stop: StopRequest) -> None:
    import requests

    url = f"http://127.0.0.1:{port}/healthcheck"
    deadline = time.monotonic() + FLOWER_START_TIMEOUT
    while time.monotonic() < deadline and not stop:
        if not flower.alive():
            raise DemoError(f"flower exited with {flower.process.returncode} before answering")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    if not stop:
        raise DemoError(f"flower did not answer {url} within {FLOWER_START_TIMEOUT:.0f}s")


def choose_broker(settings: Settings, stop: StopRequest) -> tuple[str, PrivateBroker | None]:
    if broker_answers(settings.broker):
        say(f"using the broker at {settings.broker_display}")
        return settings.broker, None
    server = find_rabbitmq_server()
    if server is None:
        raise DemoError(INSTALL_HINT)
    say(f"no broker answers at {settings.broker_display}: starting a private RabbitMQ node ({server})")
    try:
        broker = start_private_broker(server, dict(os.environ), should_stop=lambda: bool(stop),
                                      management=True)
    except PrivateBrokerError as exc:
        raise DemoError(str(exc)) from None
    say(f"started private broker {broker.nodename} on 127.0.0.1:{broker.port} "
        f"(pids {' '.join(map(str, broker.pids))}, data in {broker.directory})")
    return broker.url, broker


def supervise(children: list[Child], broker: PrivateBroker | None, stop: StopRequest,
              duration: float | None) -> int:
    """Wait for a signal, the end of ``duration``, or a child's death (then 1)."""
    deadline = time.monotonic() + duration if duration is not None else None
    watched = children + (broker.children if broker else [])
    while True:
        if stop.signum is not None:
            say(f"{signal.Signals(stop.signum).name} received: stopping everything")
            return 0
        if deadline is not None and time.monotonic() >= deadline:
            say(f"{duration:g}s elapsed: stopping everything")
            return 0
        for child in watched:
            if not child.alive():
                code = child.process.returncode
                say(f"{child.name} (pid {child.pid}) exited with {code}: stopping everything")
                return 1
        time.sleep(0.2)


def run_demo(settings: Settings, options: DemoOptions | None = None) -> int:
    options = options or DemoOptions()
    stop = StopRequest()
    previous_handlers = stop.install()
    children: list[Child] = []
    broker: PrivateBroker | None = None
    run_dir = Path(tempfile.mkdtemp(prefix="taskqueue-demo-"))
    code = 1
    try:
        broker_url, broker = choose_broker(settings, stop)
        wanted_port = options.flower_port if options.flower_port is not None else settings.flower_port
        port = first_free_port(wanted_port)
        flower_auth, generated_password = flower_credentials(settings)
        interval = options.interval if options.interval is not None else settings.producer_interval
        env = child_env(settings, broker_url, run_dir, port, flower_auth, interval,
                        broker.management_api if broker else None)
        command = taskqueue_command()

        def start(name: str, *args: str) -> Child:
            child = start_child(name, [*command, *args], env)
            children.append(child)
            say(f"started {name} (pid {child.pid})")
            return child

        start("worker", "worker")
        flower = start("flower", "flower")
        wait_for_flower(flower, port, stop)
        if stop:
            return supervise(children, broker, stop, options.duration)  # says which signal; finally stops
        user = flower_auth.split(",")[0].partition(":")[0]
        password = repr(generated_password) if generated_password else "from FLOWER_BASIC_AUTH"
        say(f"Flower at http://127.0.0.1:{port}/ (user {user!r}, password {password})")
        start("producer", "produce")
        until = f"running for {options.duration:g}s" if options.duration is not None else "Ctrl-C stops all"
        say(f"queue {settings.queue_name!r}: add every {interval:g}s; {until}")
        code = supervise(children, broker, stop, options.duration)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        # A second Ctrl-C must not cut the shutdown short: it is bounded anyway (SIGKILL after a wait).
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        codes = stop_children(children)
        if codes:
            say("stopped " + ", ".join(f"{name} (exit {rc})" for name, rc in codes.items()))
        if broker is not None:
            broker.remove()
            say(f"stopped private broker {broker.nodename} and removed {broker.directory}")
        shutil.rmtree(run_dir, ignore_errors=True)
        StopRequest.restore(previous_handlers)
    return code
