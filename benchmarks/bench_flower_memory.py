"""Flower's memory after N ``add`` tasks: ``taskqueue flower`` (capped) vs stock Flower defaults.

Both Flowers watch the same event stream at once (each has its own event queue), so one workload gives
both figures. Stock = ``celery -A taskqueue.app flower`` with no options and no FLOWER_* variables
(max_tasks 100 000); capped = ``taskqueue flower`` with the default FLOWER_MAX_TASKS (10 000).

    .venv/bin/python benchmarks/bench_flower_memory.py --tasks 50000

Needs the broker (BROKER_URL, default amqp://guest:guest@127.0.0.1:5672//). Uses a queue of its own,
deleted at the end; every process it starts is stopped by PID. Prints RSS in MiB.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import _common  # noqa: F401  (the repository root on the path, for tests.support)
import psutil
import requests
from tests.support.ports import free_port
from tests.support.processes import VENV_BIN, start_logged
from tests.support.waiting import wait_until

from taskqueue.app import remove_task_queue
from taskqueue.children import stop_process

#: task-succeeded events per (task, worker). The task name is "" when Flower no longer holds the task's
#: earlier events (evicted by the cap before it finished): such tasks count too.
EVENTS = re.compile(r'^flower_events_total\{task="[^"]*",type="task-succeeded",worker="(?P<worker>[^"]+)"\} '
                    r'(?P<count>[0-9.e+]+)$', re.MULTILINE)
#: How long the counts may stay still before the run is considered drained.
SETTLE_SECONDS = 15.0


@dataclass
class Flower:
    label: str
    process: subprocess.Popen[bytes]
    port: int
    peak_rss: int = 0
    samples: list[int] = field(default_factory=list)

    def rss(self) -> int:
        value = int(psutil.Process(self.process.pid).memory_info().rss)
        self.peak_rss = max(self.peak_rss, value)
        return value

    def metrics(self) -> str:
        """Flower's Prometheus page (open without auth, cheap): '' while it does not answer."""
        if self.process.poll() is not None:
            raise SystemExit(f"{self.label} exited with {self.process.returncode}")
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        except requests.RequestException:
            return ""

    def succeeded(self, worker: str) -> int:
        """task-succeeded events of ``worker`` this Flower has processed (its Prometheus counter: cheap)."""
        return int(sum(float(m["count"]) for m in EVENTS.finditer(self.metrics()) if m["worker"] == worker))


def mib(value: int) -> str:
    return f"{value / 2**20:7.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=50000, help="add tasks to run (default 50000)")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole run (default 600)")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"), help="where process logs go")
    options = parser.parse_args()

    broker = os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    queue = f"bench-flower-{uuid.uuid4().hex[:8]}"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "QUEUE_", "WORKER_"))}
    base.update(BROKER_URL=broker, QUEUE_NAME=queue, PYTHONUNBUFFERED="1", LOG_LEVEL="warning",
                WORKER_HEALTH_FILE=str(options.log_dir / f"{queue}.heartbeat"))
    # The worker drains fast: a deep prefetch (the production default of 1 is for long tasks).
    worker_env = {**base, "WORKER_POOL": "prefork", "WORKER_CONCURRENCY": str(options.concurrency),
                  "WORKER_PREFETCH_MULTIPLIER": "256"}
    capped_port, stock_port = free_port(), free_port()

    os.environ.update(BROKER_URL=broker, QUEUE_NAME=queue)
    from taskqueue.app import ADD_TASK, create_app
    from taskqueue.config import load_settings

    settings = load_settings()
    app = create_app(settings, set_as_current=False)
    logs = options.log_dir
    started: list[subprocess.Popen[bytes]] = []
    try:
        capped = Flower(f"taskqueue flower (max_tasks {settings.flower_max_tasks})", start_logged(
            [str(VENV_BIN / "taskqueue"), "flower"], {**base, "FLOWER_PORT": str(capped_port)},
            logs / f"{queue}-flower-capped.log"), capped_port)
        stock = Flower("stock Flower 2.2 defaults (max_tasks 100000)", start_logged(
            [str(VENV_BIN / "celery"), "-A", "taskqueue.app", "flower", "--address=127.0.0.1",
             f"--port={stock_port}"], base, logs / f"{queue}-flower-stock.log"), stock_port)
        flowers = [capped, stock]
        started += [f.process for f in flowers]
        worker = start_logged([str(VENV_BIN / "taskqueue"), "worker"], worker_env,
                              logs / f"{queue}-worker.log")
        started.append(worker)
        worker_name = f"celery.{worker.pid}@{socket.gethostname()}"
        # Both Flowers have seen the worker (its heartbeat events): their event receivers are running.
        wait_until(lambda: all("flower_worker_online{" in f.metrics() for f in flowers), timeout=90,
                   what="the worker in both Flowers", interval=0.5)
        baseline = {f.label: f.rss() for f in flowers}

        began = time.monotonic()
        with app.producer_or_acquire() as producer:
            for i in range(options.tasks):
                app.send_task(ADD_TASK, args=(i, i), ignore_result=True, producer=producer)
                if i % 5000 == 0:
                    for f in flowers:
                        f.rss()
        published = time.monotonic() - began
        print(f"published {options.tasks} add tasks in {published:.1f}s", flush=True)

        # Done when every task is seen, or when nothing moves any more: an event queue holds events for 5 s
        # only (Celery's event_queue_ttl), so a Flower that lags behind loses some and never reaches N.
        deadline = began + options.timeout
        last: dict[str, int] = {}
        still_since = time.monotonic()
        while True:
            counts = {f.label: f.succeeded(worker_name) for f in flowers}
            for f in flowers:
                f.rss()
            if counts != last:
                last, still_since = counts, time.monotonic()
            if all(count >= options.tasks for count in counts.values()):
                break
            if time.monotonic() - still_since > SETTLE_SECONDS and max(counts.values()) > 0:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: Flowers saw {counts} of {options.tasks} succeeded tasks")
            time.sleep(2)
        elapsed = time.monotonic() - began
        time.sleep(3)  # let the event loops settle before the final reading
        rate = options.tasks / elapsed
        print(f"{options.tasks} add tasks in {elapsed:.1f}s ({rate:.0f} tasks/s end to end)\n")
        print(f"{'Flower':48} {'seen':>7} {'start':>11} {'after':>11} {'peak':>11}")
        for f in flowers:
            print(f"{f.label:48} {last[f.label]:>7} {mib(baseline[f.label]):>11} {mib(f.rss()):>11} "
                  f"{mib(f.peak_rss):>11}")
    finally:
        for process in reversed(started):
            stop_process(process)
        app.close()
        with app.connection_for_write() as connection:
            remove_task_queue(connection, queue)
    return 0


if __name__ == "__main__":
    sys.exit(main())
