"""``taskqueue flower``: Flower 2.x against the configured broker, with safe and bounded defaults.

Flower is driven through its own entry point (the ``celery flower`` click command, via ``app.start``), so
its banner, signal handling and state saving stay stock. What this module adds is built by a pure function
from the settings (``flower_command``): the port, bind address, basic auth, url prefix, persistence and a
cap on the tasks and workers Flower keeps in memory (stock Flower keeps 100 000 tasks: 823 MB RSS).

Two things Flower would otherwise do are shut off, so the settings stay the one source of configuration:
its own ``FLOWER_*`` environment variables (ours share the prefix but not all the semantics: an empty
``FLOWER_BASIC_AUTH`` would become a credential of ``''``) and a ``flowerconfig.py`` in the working dir.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from taskqueue.config import ConfigError, Settings, mask_url

if TYPE_CHECKING:
    from celery import Celery

#: Flower's options carrying a secret: masked wherever a command is shown.
SECRET_OPTIONS = ("--basic_auth=",)
#: Flower's options holding a URL: shown with the URL's password masked.
URL_OPTIONS = ("--broker_api=",)

#: Flower's log level floor: its debug log prints its tornado settings (the cookie secret among them).
_FLOWER_LOG_LEVELS = {"debug": "info", "info": "info", "warning": "warning", "error": "error",
                      "critical": "error"}


class FlowerRefused(ConfigError):
    """Flower would serve without authentication on a non-loopback address."""


@dataclass(frozen=True)
class FlowerCommand:
    """Flower's argv (after ``flower``) and a loggable summary; ``repr`` never shows a secret."""

    argv: tuple[str, ...] = field(repr=False)
    url: str
    authenticated: bool

    def __repr__(self) -> str:
        return f"FlowerCommand(argv={list(redact(self.argv))!r}, url={self.url!r})"

    def summary(self) -> str:
        """One line for the log: where Flower serves and how, without any credential."""
        auth = "basic auth" if self.authenticated else "NO authentication"
        return f"Flower at {self.url} ({auth}): {' '.join(redact(self.argv))}"


def redact(argv: Sequence[str]) -> list[str]:
    """``--basic_auth=user:secret`` -> ``--basic_auth=***``; a URL option's password -> ``***``."""
    return [_redact(arg) for arg in argv]


def _redact(arg: str) -> str:
    for prefix in SECRET_OPTIONS:
        if arg.startswith(prefix):
            return prefix + "***"
    for prefix in URL_OPTIONS:
        if arg.startswith(prefix):
            return prefix + mask_url(arg.removeprefix(prefix))
    return arg


def is_loopback(address: str) -> bool:
    """True when only this host can connect. '' binds every interface, so it is not loopback."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # another host name: it may resolve anywhere, so assume the worst
        return False


def flower_command(settings: Settings, port: int | None = None) -> FlowerCommand:
    """Build Flower's options from the settings; ``port`` (the ``--port`` option) wins over FLOWER_PORT.

    Raises FlowerRefused when Flower would serve without authentication beyond this host.
    """
    port = port if port is not None else settings.flower_port
    address = settings.flower_address
    auth = settings.flower_auth
    if auth is None and not is_loopback(address) and not settings.flower_allow_unauthenticated:
        raise FlowerRefused(
            f"refusing to serve Flower without authentication on {address or '*'}:{port}: "
            "set FLOWER_BASIC_AUTH=user:password, or FLOWER_ADDRESS=127.0.0.1, "
            "or FLOWER_ALLOW_UNAUTHENTICATED=true to accept it"
        )
    argv = [
        f"--port={port}",
        f"--address={address}",
        # A stray flowerconfig.py in the working directory must not override the settings.
        "--conf=/dev/null",
        f"--logging={_FLOWER_LOG_LEVELS[settings.log_level.lower()]}",
        # The caps that bound its memory (least recently seen tasks go first); stock keeps 100 000 tasks.
        f"--max_tasks={settings.flower_max_tasks}",
        f"--max_workers={settings.flower_max_workers}",
        # Flower asks workers to send events every few seconds: workers started before it show tasks too.
        "--enable_events=true",
    ]
    if settings.flower_purge_offline_workers is not None:
        argv.append(f"--purge_offline_workers={settings.flower_purge_offline_workers}")
    if settings.flower_url_prefix:
        argv.append(f"--url_prefix={settings.flower_url_prefix}")
    if settings.flower_persistent:
        argv += [
            "--persistent=true",
            f"--db={settings.flower_db}",
            # Saved periodically too, not only at a clean stop: an OOM kill then loses one interval.
            f"--state_save_interval={settings.flower_state_save_interval}",
        ]
    if settings.flower_broker_api is not None:
        # Queue depths and consumers on the Broker tab: without it, "No queue data is available".
        argv.append(f"--broker_api={settings.flower_broker_api.get_secret_value()}")
    if auth is not None:
        # Flower splits a multiple option on commas itself: "a:x,b:y" is two users.
        argv.append(f"--basic_auth={auth}")
    return FlowerCommand(argv=tuple(argv), url=_local_url(address, port, settings.flower_url_prefix),
                         authenticated=auth is not None)


#: Seconds an event may wait in Flower's queue on the broker before RabbitMQ drops it.
FLOWER_EVENT_QUEUE_TTL = 60.0


def _local_url(address: str, port: int, url_prefix: str) -> str:
    """The URL to reach Flower from this host (a wildcard bind is reached through loopback)."""
    host = "127.0.0.1" if address in {"", "0.0.0.0", "::"} else address
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/{url_prefix + '/' if url_prefix else ''}"


def _scrub_flower_environment() -> None:
    """Drop ``FLOWER_*`` variables Flower would read itself: the settings already hold what they meant."""
    from flower.command import is_flower_envvar

    for name in [name for name in os.environ if is_flower_envvar(name)]:
        del os.environ[name]


def monitor_app(settings: Settings) -> Celery:
    """The Celery app Flower monitors with: the project's app, with a longer event backlog."""
    from taskqueue.app import create_app

    app = create_app(settings)
    # Celery gives a monitor's event queue a 5 s message TTL: a Flower busy with a burst then loses events
    # (measured: 10-20% of 100k tasks). A minute of backlog on the broker is a fair price for a full list.
    app.conf.event_queue_ttl = FLOWER_EVENT_QUEUE_TTL
    return app


def run_flower(settings: Settings, port: int | None = None) -> int:
    """Run Flower in this process until SIGTERM/SIGINT; returns the exit code."""
    try:
        command = flower_command(settings, port)
    except FlowerRefused as exc:
        print(f"taskqueue flower: {exc}", file=sys.stderr)
        return 2
    app = monitor_app(settings)
    _scrub_flower_environment()
    print(f"taskqueue flower: {command.summary()}", file=sys.stderr, flush=True)
    try:
        # Flower's own command: it handles SIGTERM (exit 0, state saved at exit) and SIGINT itself.
        code = app.start(["flower", *command.argv])
    except SystemExit as exc:  # Flower exits on an invalid option
        return exc.code if isinstance(exc.code, int) else 1
    except OSError as exc:  # the port is taken or the address is not this host's: one line, no traceback
        print(f"taskqueue flower: cannot listen on {command.url}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return int(code or 0)
