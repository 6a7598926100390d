"""Side by side on one private RabbitMQ node, in one run: raw AMQP, a stock Celery worker, the chart's worker.

    python benchmarks/bench_compare.py [--tasks N] [--runs R] [--roundtrips K] [--set worker.x=y ...]
                                       [--env NAME=VALUE ...] [--py-spy DIR]

Three subjects, interleaved run by run (raw, stock, chart; R times) so that the noise of a shared machine
hits them alike; the table gives the median of the R runs:

- ``raw``: py-amqp straight at a quorum queue: N messages published with publisher confirms, then consumed
  (prefetch 200, one multiple-ack per 100): what the broker itself can do.
- ``stock``: ``celery worker -E -c 2 -P prefork`` of a minimal app (an ``add`` task, Celery's defaults:
  classic queue ``celery``, early acks, prefetch multiplier 4, log level WARNING); only ``rpc://`` results
  are added, for the round trips.
- ``chart``: ``taskqueue worker`` with the environment of the worker container of the chart's Deployment as
  ``helm template`` renders it (``--set`` passes values to helm). Values from secretKeyRefs (credentials)
  are dropped; BROKER_URL points at the private node, QUEUE_NAME and the heartbeat file are made unique.
  ``--env`` overrides a variable afterwards (to measure one change).

For each worker: N ``add`` tasks are enqueued first (publisher confirms on; results ignored), then the worker
is started; the queue's ready count is sampled every 10 ms. ``start->1st`` is the time from spawning the
worker until the count first drops; ``from start`` is N over the time from spawning until the queue is
empty; ``steady`` is the rate while the count goes from 80 % to 20 % of N. (Empty: up to concurrency x
prefetch tasks are still in the worker; at these rates that is a few milliseconds.) Then K round trips of
``add.delay(2, 3).get()`` (after 20 unmeasured ones) give p50/p99, and the RSS of the worker and its pool
processes is summed.

``--baseline REV`` adds ``before``: the chart's worker of git revision REV (its ``src`` and its chart's
environment), run the same way, between stock and chart.

``--py-spy DIR`` records the chart worker's main and pool processes with py-spy (``--subprocesses``) during
the drain of each run, into DIR/<chart|before>-<run>.txt (collapsed stacks; ``py-spy`` must be installed).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common
import psutil
import yaml
from _common import VENV_BIN, broker

from taskqueue.children import stop_process

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "celery-rabbitmq"
STOCK_APP = textwrap.dedent('''\
    import os

    from celery import Celery

    # Celery's defaults, plus a result backend for the round trips.
    app = Celery("stockapp", broker=os.environ["BROKER_URL"], backend="rpc://")


    @app.task
    def add(x, y):
        return x + y
''')
STOCK_TASK = "stockapp.add"
CHART_TASK = "taskqueue.tasks.add"


@dataclass
class Result:
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def median(self, name: str) -> float | None:
        found = self.values.get(name)
        return statistics.median(found) if found else None


# ------------------------------------------------------------------------------------------------ chart env


def chart_worker_env(sets: list[str], chart: Path = CHART) -> dict[str, str]:
    """The worker container's environment from ``helm template`` of the chart, credentials dropped."""
    helm = VENV_BIN / "helm" if (VENV_BIN / "helm").exists() else Path("helm")
    args = [str(helm), "template", "tq", str(chart)]
    for item in sets:
        args += ["--set", item]
    rendered = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    for doc in yaml.safe_load_all(rendered):
        if not doc or doc.get("kind") != "Deployment":
            continue
        labels = doc["spec"]["template"]["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/component") != "worker":
            continue
        container = doc["spec"]["template"]["spec"]["containers"][0]
        env: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            # valueFrom (secretKeyRef: the broker's credentials): dropped, BROKER_URL replaces them.
        return env
    raise SystemExit("no worker Deployment in the rendered chart")


# ------------------------------------------------------------------------------------------------ helpers


def ready_count(channel: Any, queue: str) -> int:
    _, count, _ = channel.queue_declare(queue, passive=True)
    return int(count)


def tree_sum(pid: int, measure: Callable[[psutil.Process], float]) -> float:
    """``measure`` summed over ``pid`` and its live descendants (NaN once the process is gone)."""
    try:
        root = psutil.Process(pid)
        return sum(measure(p) for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return float("nan")


def tree_rss(pid: int) -> float:
    """MiB of resident memory of ``pid`` and its descendants."""
    return tree_sum(pid, lambda p: p.memory_info().rss) / 2**20


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants so far."""
    return tree_sum(pid, lambda p: sum(p.cpu_times()[:2]))


def listener_pids(url: str) -> list[int]:
    """The processes listening on the TCP port of ``url`` (the broker's Erlang VM)."""
    from urllib.parse import urlsplit

    port = urlsplit(url).port or 5672
    return sorted({c.pid for c in psutil.net_connections(kind="tcp")
                   if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid})


def crossing(samples: list[tuple[float, int]], level: float) -> float:
    """Time at which the ready count first fell to ``level`` or below (linear between samples)."""
    previous = samples[0]
    for sample in samples:
        if sample[1] <= level:
            (t0, c0), (t1, c1) = previous, sample
            if c0 == c1:
                return t1
            return t0 + (t1 - t0) * (c0 - level) / (c0 - c1)
        previous = sample
    return samples[-1][0]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# ------------------------------------------------------------------------------------------------ subjects


def bench_raw(url: str, tasks: int, result: Result) -> None:
    from kombu.connection import Connection

    queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    body = b'[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'
    with Connection(url) as connection:  # type: ignore[no-untyped-call]
        connection.connect()
        raw = connection.connection  # py-amqp's Connection
        channel = raw.channel()
        channel.queue_declare(queue, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
        channel.confirm_select()
        import amqp

        started = time.perf_counter()
        for _ in range(tasks):
            channel.basic_publish_confirm(
                amqp.Message(body, content_type="application/json", delivery_mode=2), "", queue
            )
        result.add("enqueue/s", tasks / (time.perf_counter() - started))
        consumer = raw.channel()
        consumer.basic_qos(0, 200, False)
        received = 0

        def on_message(message: Any) -> None:
            nonlocal received
            received += 1
            if received % 100 == 0 or received == tasks:
                consumer.basic_ack(message.delivery_tag, multiple=True)

        started = time.perf_counter()
        consumer.basic_consume(queue, callback=on_message)
        deadline = time.monotonic() + 300
        while received < tasks and time.monotonic() < deadline:
            raw.drain_events(timeout=5)
        elapsed = time.perf_counter() - started
        result.add("tasks/s from start", tasks / elapsed)
        result.add("tasks/s steady", tasks / elapsed)
        consumer.close()
        channel.queue_delete(queue)
        channel.close()


@dataclass
class Subject:
    name: str
    queue: str
    task: str
    client: Any  # a Celery app, for publishing and round trips
    command: list[str]
    env: dict[str, str]
    cwd: Path
    cleanup: Callable[[], None]


def drain(subject: Subject, url: str, tasks: int, roundtrips: int, result: Result, log: Path,
          spy: Path | None) -> None:
    from kombu.connection import Connection

    app = subject.client
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for i in range(tasks):
            app.send_task(subject.task, args=(i, i), ignore_result=True, producer=producer)
    result.add("enqueue/s", tasks / (time.perf_counter() - started))

    with Connection(url) as connection, log.open("wb") as out:  # type: ignore[no-untyped-call]
        channel = connection.channel()
        assert ready_count(channel, subject.queue) == tasks, "enqueued tasks missing from the queue"
        brokers = listener_pids(url)
        broker_cpu = sum(tree_cpu(pid) for pid in brokers)
        spawned = time.perf_counter()
        process = subprocess.Popen(subject.command, env=subject.env, cwd=subject.cwd, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        spy_process: subprocess.Popen[bytes] | None = None
        try:
            samples: list[tuple[float, int]] = [(0.0, tasks)]
            deadline = time.monotonic() + 600
            while samples[-1][1] > 0:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"{subject.name}: worker did not drain (see {log})")
                time.sleep(0.01)
                samples.append((time.perf_counter() - spawned, ready_count(channel, subject.queue)))
                if spy is not None and spy_process is None and samples[-1][1] < tasks:
                    spy_process = subprocess.Popen(
                        [str(VENV_BIN / "py-spy"), "record", "--subprocesses", "--nonblocking", "-r", "200",
                         "-f", "raw", "-o", str(spy), "-p", str(process.pid)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )
            if spy_process is not None:
                spy_process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                try:
                    spy_process.wait(timeout=30)
                finally:
                    stop_process(spy_process)
            # CPU per task, from spawning the worker until the queue is empty (its start included).
            result.add("worker CPU us/task", tree_cpu(process.pid) / tasks * 1e6)
            broker_used = sum(tree_cpu(pid) for pid in brokers) - broker_cpu
            result.add("broker CPU us/task", broker_used / tasks * 1e6)
            result.add("rss MiB", tree_rss(process.pid))
            first = next(t for t, count in samples if count < tasks)
            result.add("start->1st s", first)
            result.add("tasks/s from start", tasks / samples[-1][0])
            t80, t20 = crossing(samples, 0.8 * tasks), crossing(samples, 0.2 * tasks)
            result.add("tasks/s steady", 0.6 * tasks / (t20 - t80) if t20 > t80 else float("nan"))

            times: list[float] = []
            for i in range(20 + roundtrips):
                begin = time.perf_counter()
                value = app.send_task(subject.task, args=(2, 3)).get(timeout=30)
                if i >= 20:
                    times.append(time.perf_counter() - begin)
                assert value == 5, value
            result.add("rtt p50 ms", percentile(times, 0.5) * 1000)
            result.add("rtt p99 ms", percentile(times, 0.99) * 1000)
        finally:
            if spy_process is not None:
                stop_process(spy_process)
            stop_process(process)
            subject.cleanup()


def stock_subject(url: str, tmp: Path) -> Subject:
    from celery import Celery
    from kombu.connection import Connection

    (tmp / "stockapp.py").write_text(STOCK_APP)
    client = Celery("stockapp", broker=url, backend="rpc://", set_as_current=False)
    client.conf.broker_transport_options = {"confirm_publish": True}
    # Celery's default queue, as the worker declares it (the cleanup of the previous run deleted it).
    with client.connection_for_write() as connection:
        client.amqp.queues[client.conf.task_default_queue].bind(connection.default_channel).declare()

    def cleanup() -> None:
        with Connection(url) as connection:  # type: ignore[no-untyped-call]
            connection.channel().queue_delete("celery")

    env = dict(os.environ, BROKER_URL=url, PYTHONPATH=str(tmp), PYTHONUNBUFFERED="1")
    command = [str(VENV_BIN / "celery"), "-A", "stockapp", "worker", "-E", "-c", "2", "-P", "prefork",
               "-n", f"stock-{uuid.uuid4().hex[:6]}@%h"]
    return Subject("stock", "celery", STOCK_TASK, client, command, env, tmp, cleanup)


def export_revision(revision: str, dest: Path) -> Path:
    """``src`` and ``charts`` of git ``revision`` of this repository, extracted under ``dest``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", revision, "src", "charts"],
                             capture_output=True, check=True, timeout=120).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, timeout=120)
    return dest


def chart_subject(url: str, tmp: Path, chart_env: dict[str, str], overrides: dict[str, str],
                  name: str = "chart", source: Path | None = None) -> Subject:
    from kombu.connection import Connection

    from taskqueue.app import create_app, remove_task_queue
    from taskqueue.config import Settings

    queue = f"bench-{uuid.uuid4().hex[:10]}"
    env = {key: value for key, value in os.environ.items() if key not in chart_env}
    env.update(chart_env)
    # HEALTH_FILE too: a --baseline revision may predate its rename to WORKER_HEALTH_FILE.
    heartbeat = str(tmp / "heartbeat")
    env.update(BROKER_URL=url, QUEUE_NAME=queue, WORKER_HEALTH_FILE=heartbeat, HEALTH_FILE=heartbeat,
               PYTHONUNBUFFERED="1", PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.update(overrides)
    settings = Settings(
        broker_url=url, queue_name=queue, queue_type=env.get("QUEUE_TYPE", "quorum"),  # type: ignore[arg-type]
        queue_delivery_limit=int(env.get("QUEUE_DELIVERY_LIMIT", "10")),
    )
    client = create_app(settings, set_as_current=False)
    client.conf.broker_transport_options = {**client.conf.broker_transport_options, "confirm_publish": True}

    def cleanup() -> None:
        with Connection(url) as connection:  # type: ignore[no-untyped-call]
            remove_task_queue(connection, queue)

    command = [str(VENV_BIN / "taskqueue"), "worker"]
    if source is not None:  # the worker of another revision: its own src first on the path
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source / "src"), env.get("PYTHONPATH")]))
        command = [sys.executable, "-c", "from taskqueue.cli import main; main()", "worker"]
    return Subject(name, queue, CHART_TASK, client, command, env, tmp, cleanup)


ROWS = ["tasks/s from start", "tasks/s steady", "start->1st s", "rtt p50 ms", "rtt p99 ms", "enqueue/s",
        "worker CPU us/task", "broker CPU us/task", "rss MiB"]


def fmt(value: float | None, name: str) -> str:
    if value is None:
        return "-"
    if name.startswith("start"):
        return f"{value:.2f}"
    if name.startswith("rtt"):
        return f"{value:.1f}"
    return f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--roundtrips", type=int, default=200)
    parser.add_argument("--set", action="append", default=[], help="helm --set for the chart's render")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE over the chart's environment")
    parser.add_argument("--only", default="raw,stock,chart", help="subjects to run, comma-separated")
    parser.add_argument("--py-spy", type=Path, default=None, help="record the chart worker into this dir")
    parser.add_argument("--baseline", metavar="REVISION", default=None,
                        help="also run the chart's worker of this git revision (src and chart) as 'before'")
    args = parser.parse_args()
    subjects = args.only.split(",")
    chart_env = chart_worker_env(args.set)
    baseline_dir = tempfile.TemporaryDirectory(prefix="taskqueue-baseline-")
    baseline: Path | None = None
    baseline_env: dict[str, str] = {}
    if args.baseline:
        baseline = export_revision(args.baseline, Path(baseline_dir.name))
        baseline_env = chart_worker_env(args.set, baseline / "charts" / "celery-rabbitmq")
        subjects.insert(subjects.index("chart") if "chart" in subjects else len(subjects), "before")
    overrides = dict(item.split("=", 1) for item in args.env)
    results = {name: Result() for name in subjects}
    with broker() as url:
        assert url == _common.BROKER_URL
        for run in range(args.runs):
            for name in subjects:
                with tempfile.TemporaryDirectory(prefix="taskqueue-bench-") as tmp_name:
                    tmp = Path(tmp_name)
                    if name == "raw":
                        bench_raw(url, args.tasks, results[name])
                    else:
                        if name == "stock":
                            subject = stock_subject(url, tmp)
                        elif name == "before":
                            subject = chart_subject(url, tmp, baseline_env, overrides, "before", baseline)
                        else:
                            subject = chart_subject(url, tmp, chart_env, overrides)
                        spy = None
                        if args.py_spy is not None and name in ("chart", "before"):
                            args.py_spy.mkdir(parents=True, exist_ok=True)
                            spy = args.py_spy / f"{name}-{run}.txt"
                        try:
                            drain(subject, url, args.tasks, args.roundtrips, results[name],
                                  tmp / "worker.log", spy)
                        finally:
                            subject.client.close()
                latest = ", ".join(f"{row} {fmt(results[name].values[row][-1], row)}"
                                   for row in ROWS if row in results[name].values)
                print(f"run {run + 1}/{args.runs} {name}: {latest}", file=sys.stderr, flush=True)
    print(f"\n{args.tasks} add tasks, medians of {args.runs} runs, one private RabbitMQ node, "
          f"{os.cpu_count()} CPUs; chart env: WORKER_POOL={chart_env.get('WORKER_POOL')} "
          f"WORKER_CONCURRENCY={chart_env.get('WORKER_CONCURRENCY')} "
          f"WORKER_PREFETCH_MULTIPLIER={chart_env.get('WORKER_PREFETCH_MULTIPLIER')} "
          f"LOG_LEVEL={chart_env.get('LOG_LEVEL')} QUEUE_TYPE={chart_env.get('QUEUE_TYPE')}"
          + (f"; overrides {overrides}" if overrides else ""))
    header = f"| {'':20} | " + " | ".join(f"{name:>9}" for name in subjects) + " |"
    print(header)
    print("|" + "-" * 22 + "|" + "|".join("-" * 11 for _ in subjects) + "|")
    for row in ROWS:
        cells = " | ".join(f"{fmt(results[name].median(row), row):>9}" for name in subjects)
        print(f"| {row:20} | {cells} |")
    if baseline_env:
        print(f"before: the chart's worker of {args.baseline} (its env: WORKER_PREFETCH_MULTIPLIER="
              f"{baseline_env.get('WORKER_PREFETCH_MULTIPLIER')})")
    for name in ("before", "chart"):
        if "stock" in subjects and name in subjects:
            for row in ("tasks/s from start", "tasks/s steady"):
                stock, mine = results["stock"].median(row), results[name].median(row)
                if stock and mine:
                    print(f"{name}/stock {row}: {mine / stock:.2f}x")
    baseline_dir.cleanup()


if __name__ == "__main__":
    main()
