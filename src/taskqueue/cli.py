"""The one ``taskqueue`` command the containers run: worker, produce, beat, flower, health, demo.

Each subcommand loads the settings first, so a bad environment variable stops the process with one line
naming it (exit 2) before anything connects anywhere. Module imports are deferred to the subcommand so a
probe (``taskqueue health worker``) doesn't pay for importing Celery and Flower.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

from taskqueue.config import ConfigError, ProbeSettings, load_probe_settings, load_settings

# The probes' checks: standard library only, like the config loader above (a few ms for the other commands).
from taskqueue.health import HealthResult, check_beat, check_flower, check_producer, check_worker

if TYPE_CHECKING:  # a run-time import would load pydantic, which the probes avoid
    from taskqueue.config import Settings

T = TypeVar("T")


def _load(loader: Callable[[], T]) -> T:
    try:
        return loader()
    except ConfigError as exc:
        click.echo(f"taskqueue: {exc}", err=True)
        sys.exit(2)


def _settings() -> Settings:
    return _load(load_settings)


def _probe_settings() -> ProbeSettings:
    # The probes read a few variables with the stdlib-only loader: no pydantic on their path.
    return _load(load_probe_settings)


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # Resolved only when asked: the version lookup (importlib.metadata) would slow every probe.
    if not value or ctx.resilient_parsing:
        return
    from taskqueue import __version__

    click.echo(f"taskqueue, version {__version__}")
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
def main() -> None:
    """Celery + RabbitMQ + Flower: the task queue of the classic Kubernetes example."""


@main.command()
def worker() -> None:
    """Run the Celery worker that executes ``add``."""
    settings = _settings()
    from taskqueue.worker import run_worker

    sys.exit(run_worker(settings))


@main.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between two dispatches [default: PRODUCER_INTERVAL, 5].",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True, max=100_000),
    help="Tasks per second, for bulk runs (same as --interval 1/R; not with --interval).",
)
@click.option("--count", type=click.IntRange(min=1),
              help="Stop after N tasks [default: PRODUCER_COUNT, else run until stopped].")
@click.option("--idle-after-count", is_flag=True, default=None,
              help="Once --count tasks are sent, stay up idle until stopped instead of exiting (a "
                   "Kubernetes Deployment restarts an exited producer into another batch) "
                   "[default: PRODUCER_IDLE_AFTER_COUNT, false].")
def produce(
    interval: float | None, rate: float | None, count: int | None, idle_after_count: bool | None
) -> None:
    """Dispatch ``add`` with random integers (the original's run_tasks.py). Options win over the
    environment: --interval or --rate over PRODUCER_INTERVAL/PRODUCER_RATE, --count over PRODUCER_COUNT."""
    if interval is not None and rate is not None:
        raise click.UsageError("--interval and --rate are mutually exclusive (--rate R means --interval 1/R)")
    settings = _settings()
    from taskqueue.producer import interval_from, run_producer

    period = interval_from(interval, rate, settings.producer_period)
    sys.exit(run_producer(
        settings,
        interval=period,
        count=settings.producer_count if count is None else count,
        idle_after_count=settings.producer_idle_after_count if idle_after_count is None else idle_after_count,
    ))


@main.command()
def beat() -> None:
    """Run celery beat: send the BEAT_SCHEDULE tasks (default: add every 5 s) on time."""
    settings = _settings()
    from taskqueue.beat import run_beat

    sys.exit(run_beat(settings))


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to serve on (wins over FLOWER_PORT; default 5555). The health probe reads "
                   "FLOWER_PORT: in a container set that instead.")
def flower(port: int | None) -> None:
    """Run the Flower UI against the configured broker."""
    settings = _settings()
    from taskqueue.flower import run_flower

    sys.exit(run_flower(settings, port=port))


def _exit_with(check: Callable[..., HealthResult], **options: bool) -> NoReturn:
    """Run a health check on the probe settings: its one line printed, its verdict the exit code."""
    sys.exit(check(_probe_settings(), **options).report())


@main.group()
def health() -> None:
    """Cheap liveness/readiness checks for Kubernetes probes (exit 0 healthy, 1 not, with a reason)."""


@health.command("worker")
def health_worker() -> None:
    """Check the worker's heartbeat: alive, not wedged, consuming from the broker."""
    _exit_with(check_worker)


def _add_loop_health_command(component: str, check: Callable[..., HealthResult], doc: str, *,
                             waiting: str, ready_while: str) -> None:
    """Add ``taskqueue health <component>`` for a process that refreshes its heartbeat from its own loop
    (the producer, celery beat): healthy while at work, and with --liveness while it waits for the broker."""

    @health.command(component, help=doc)
    @click.option("--liveness", is_flag=True,
                  help=f"Pass also while {waiting} waits for the broker (alive, not wedged): for a "
                       f"livenessProbe. Without it, healthy only while {ready_while} (readiness).")
    def command(liveness: bool) -> None:
        _exit_with(check, liveness=liveness)


_add_loop_health_command(
    "producer", check_producer,
    "Check the producer's heartbeat: alive, its loop turning, publishing (unless --liveness).",
    waiting="the producer", ready_while="its publishes succeed",
)
_add_loop_health_command(
    "beat", check_beat,
    "Check celery beat's heartbeat: alive, its scheduler loop turning (no broker round trip).",
    waiting="beat", ready_while="connected and its sends succeed",
)


@health.command("flower")
def health_flower() -> None:
    """Check that Flower answers."""
    _exit_with(check_flower)


@main.command()
@click.option("--flower-port", type=click.IntRange(1, 65535), default=None,
              help="Flower's port, or the first free one from it (default FLOWER_PORT, 5555).")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds between add tasks (default PRODUCER_INTERVAL, 5).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop everything after SECONDS (default: run until Ctrl-C).")
def demo(flower_port: int | None, interval: float | None, duration: float | None) -> None:
    """The whole original example on this machine: broker, worker, producer, Flower."""
    settings = _settings()
    from taskqueue.demo import DemoOptions, run_demo

    sys.exit(run_demo(settings, DemoOptions(flower_port=flower_port, interval=interval, duration=duration)))


if __name__ == "__main__":
    main()
