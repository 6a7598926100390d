"""``add`` tasks/s one worker drains with task events on (production settings).

N tasks are published first (results ignored: we time the worker, not a client); then one worker is
started and timed from its first received task until its log shows all N succeeded.

    python benchmarks/bench_throughput.py [N] [--pool solo|prefork] [--concurrency C] [--prefetch P]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import bench_queue, broker, client, wait_until, workdir, worker, worker_env

from taskqueue.app import ADD_TASK


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tasks", nargs="?", type=int, default=5000)
    parser.add_argument("--pool", choices=("solo", "prefork"), default="solo")
    parser.add_argument("--concurrency", type=int, default=1, help="pool processes (prefork)")
    parser.add_argument("--prefetch", type=int, default=16)
    args = parser.parse_args()
    with workdir() as tmp, bench_queue() as queue:
        app = client(queue)
        started = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for i in range(args.tasks):
                app.send_task(ADD_TASK, args=(i, i), ignore_result=True, producer=producer)
        published = time.perf_counter() - started
        app.close()
        log = Path(tmp) / "worker.log"
        env = worker_env(
            queue, Path(tmp), WORKER_POOL=args.pool, WORKER_CONCURRENCY=str(args.concurrency),
            WORKER_PREFETCH_MULTIPLIER=str(args.prefetch),
        )
        with worker(env, log):
            wait_until(lambda: "] received" in log.read_text(errors="replace"), timeout=60, what="first task",
                       interval=0.01)
            first = time.perf_counter()
            wait_until(
                lambda: log.read_text(errors="replace").count("] succeeded") >= args.tasks,
                timeout=600, what=f"{args.tasks} tasks", interval=0.1,
            )
            drained = time.perf_counter() - first
    print(
        f"published {args.tasks} add tasks in {published:.2f}s ({args.tasks / published:.0f}/s); "
        f"one worker (pool {args.pool}, concurrency {args.concurrency}, prefetch {args.prefetch}, events on) "
        "drained them in "
        f"{drained:.2f}s: {args.tasks / drained:.0f} tasks/s"
    )


if __name__ == "__main__":
    with broker():
        main()
