"""A private, throw-away RabbitMQ node for the demo when no broker answers.

Everything is its own: node name (``taskqueue-demo-<pid>@localhost``), AMQP port, distribution port, an
epmd on a port of its own (erl would otherwise spawn a shared ``epmd -daemon`` that outlives the demo),
no plugins but the management API and the Prometheus endpoint when asked for (Flower's Broker tab; the
metric-name tests; each on a port of its own), and config,
data, logs and the Erlang cookie (``HOME``) in a temporary directory that is removed when the node stops.
It listens on loopback only.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from taskqueue.children import Child, start_child, stop_children

#: Debian/Ubuntu's real start script: /usr/sbin/rabbitmq-server is a wrapper that ``su``s to the rabbitmq
#: user and ignores the environment set here.
DEBIAN_SERVER_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
#: sbin is often missing from a user's PATH.
_EXTRA_PATH = "/usr/sbin:/sbin:/usr/lib/rabbitmq/bin"

INSTALL_HINT = (
    "no broker answers and rabbitmq-server is not installed: install it (sudo apt-get install "
    "rabbitmq-server) or set BROKER_URL to a RabbitMQ that runs"
)


class PrivateBrokerError(RuntimeError):
    """The private node could not be started."""


def find_rabbitmq_server() -> Path | None:
    if DEBIAN_SERVER_SCRIPT.exists():
        return DEBIAN_SERVER_SCRIPT
    found = shutil.which("rabbitmq-server", path=f"{os.environ.get('PATH', '')}:{_EXTRA_PATH}")
    return Path(found) if found else None


#: Where the listening ports are drawn from when the kernel's ephemeral range cannot be read.
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: The listening ports' range ends where the ephemeral range begins; it starts this far below it.
LISTEN_RANGE_SPAN = 10000


def listen_port_range() -> range:
    """Ports below the kernel's ephemeral range (32768 and up by default). Every client socket on the
    machine takes its local port from the ephemeral range, so a node stopped and started again (a broker
    restart) cannot find one of its ports taken by a client connection meanwhile (``dist_port_already_used``),
    as a kernel-chosen port could."""
    try:
        low = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - LISTEN_RANGE_SPAN), low)


def first_bindable(ports: Iterable[int], host: str = "127.0.0.1") -> int | None:
    """The first of ``ports`` nobody is bound to on ``host`` now, or None."""
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    return None


def free_port(host: str = "127.0.0.1", tries: int = 200) -> int:
    """A port nobody is bound to now, from ``listen_port_range()`` (another process may still take it
    first: the node would then fail to start and say so)."""
    ports = listen_port_range()
    port = first_bindable((random.choice(ports) for _ in range(tries)), host)
    if port is None:
        raise PrivateBrokerError(f"no free port among {tries} tried in {ports.start}-{ports.stop - 1}")
    return port


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class PrivateBroker:
    """A private node: ``start()`` it, ``stop()`` it (data kept, so ``start()`` again is a broker restart),
    ``remove()`` it (stopped, directory gone). Every process it starts is stopped by PID."""

    server: Path
    env: dict[str, str]
    nodename: str
    port: int
    epmd_port: int
    directory: Path
    management_port: int | None = None
    prometheus_port: int | None = None
    children: list[Child] = field(default_factory=list)

    @classmethod
    def prepare(
        cls, server: Path, base_env: dict[str, str], *, name: str = "taskqueue-demo",
        management: bool = False, prometheus: bool = False,
    ) -> PrivateBroker:
        """Choose ports, write config into a new temporary directory; starts nothing. ``management``
        enables RabbitMQ's management API (what Flower's Broker tab reads) on a free loopback port,
        ``prometheus`` the rabbitmq_prometheus plugin's endpoint (/metrics, /metrics/detailed) on another."""
        directory = Path(tempfile.mkdtemp(prefix=f"{name}-rabbitmq-"))
        node_port, dist_port, epmd_port = free_port(), free_port(), free_port()
        management_port = free_port() if management else None
        prometheus_port = free_port() if prometheus else None
        nodename = f"{name}-{os.getpid()}-{directory.name[-6:]}@localhost"
        plugins = (("rabbitmq_management", management), ("rabbitmq_prometheus", prometheus))
        enabled = [plugin for plugin, on in plugins if on]
        (directory / "enabled_plugins").write_text(f"[{','.join(enabled)}].\n")  # none: no HTTP listener
        config = (f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management_port}\n"
                  if management else "")
        if prometheus:
            config += f"prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = {prometheus_port}\n"
        (directory / "rabbitmq.conf").write_text(config)
        (directory / "rabbitmq-env.conf").write_text("")  # instead of /etc/rabbitmq's, which sets a node name
        env = {
            **base_env,
            "HOME": str(directory),  # the Erlang cookie goes here
            "PATH": f"{base_env.get('PATH', '')}:{_EXTRA_PATH}",
            "RABBITMQ_NODENAME": nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node_port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "ERL_EPMD_PORT": str(epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
            "ERL_CRASH_DUMP": str(directory / "erl_crash.dump"),  # not into the caller's directory
        }
        return cls(server, env, nodename, node_port, epmd_port, directory, management_port, prometheus_port)

    @property
    def url(self) -> str:
        # guest may connect from loopback, and the node listens only there.
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def management_api(self) -> str | None:
        """The management API's URL (Flower's FLOWER_BROKER_API), or None when the plugin is off."""
        return f"http://127.0.0.1:{self.management_port}/api/" if self.management_port else None

    @property
    def prometheus_url(self) -> str | None:
        """The Prometheus endpoint's base URL (append /metrics), or None when the plugin is off."""
        return f"http://127.0.0.1:{self.prometheus_port}" if self.prometheus_port else None

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def start(self, *, timeout: float = 90.0, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Start epmd and the node and wait until its AMQP port (and management port) accepts.

        Raises PrivateBrokerError (after stopping what it started) when it does not come up within
        ``timeout`` or when ``should_stop()`` says the caller is being interrupted.
        """
        output = self.directory / "node.out"
        try:
            epmd = shutil.which("epmd", path=self.env["PATH"])
            if epmd:
                # Foreground (no -daemon): a child of ours, stopped with the node.
                epmd_args = [epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"]
                self.children.append(start_child("epmd", epmd_args, self.env, output=output, stop_timeout=5))
            else:
                print("demo: epmd not found on PATH: the node starts its own, which may outlive the demo",
                      file=sys.stderr)
            # The start script stops the node gracefully on SIGTERM (and waits for it).
            node = start_child(
                "rabbitmq-server", [str(self.server)], self.env, output=output, stop_timeout=30
            )
            self.children.append(node)
            deadline = time.monotonic() + timeout
            ports = [self.port] + [port for port in (self.management_port, self.prometheus_port) if port]
            while not all(port_open(port) for port in ports):
                if not node.alive():
                    raise PrivateBrokerError(f"rabbitmq-server exited with {node.process.returncode}:\n"
                                             f"{self.log_tail()}")
                if should_stop():
                    raise PrivateBrokerError("interrupted while the private broker was starting")
                if time.monotonic() > deadline:
                    raise PrivateBrokerError(f"rabbitmq-server did not listen on 127.0.0.1 ports {ports} "
                                             f"within {timeout:.0f}s:\n{self.log_tail()}")
                time.sleep(0.3)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the node (last started first, then its epmd); its data stays for a restart."""
        stop_children(self.children)

    def remove(self) -> None:
        """Stop the node and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl ARGS`` against this node (its cookie is in its own HOME); returns what it printed.

        For tests that change the running node, e.g. ``set_disk_free_limit`` to raise a resource alarm."""
        command = [str(self.server.with_name("rabbitmqctl")), "-n", self.nodename, *args]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout,
                                check=False)
        if result.returncode != 0:
            raise PrivateBrokerError(f"rabbitmqctl {' '.join(args)} exited with {result.returncode}: "
                                     f"{result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def log_tail(self, lines: int = 15) -> str:
        path = self.directory / "node.out"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_private_broker(
    server: Path, base_env: dict[str, str], *, timeout: float = 90.0,
    should_stop: Callable[[], bool] = lambda: False, management: bool = False, prometheus: bool = False,
) -> PrivateBroker:
    """Prepare and start a node; on failure nothing is left (processes stopped, directory removed)."""
    broker = PrivateBroker.prepare(server, base_env, management=management, prometheus=prometheus)
    try:
        broker.start(timeout=timeout, should_stop=should_stop)
    except BaseException:
        broker.remove()
        raise
    return broker
