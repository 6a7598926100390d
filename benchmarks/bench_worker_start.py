"""Worker start-to-first-task time, with and without mingle+gossip (median of several runs).

Each run: one ``add`` is already waiting in a fresh queue; the clock runs from spawning
``taskqueue worker`` until its log shows that task succeeded.

    python benchmarks/bench_worker_start.py [runs]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from _common import bench_queue, broker, client, wait_until, workdir, worker, worker_env

from taskqueue.app import ADD_TASK


def one_run(mingle_gossip: bool) -> float:
    with workdir() as tmp, bench_queue() as queue:
        app = client(queue)
        app.send_task(ADD_TASK, args=(1, 2), ignore_result=True)
        app.close()
        flag = "true" if mingle_gossip else "false"
        env = worker_env(queue, Path(tmp), WORKER_MINGLE=flag, WORKER_GOSSIP=flag)
        log = Path(tmp) / "worker.log"
        started = time.perf_counter()
        with worker(env, log):
            wait_until(lambda: "] succeeded" in log.read_text(errors="replace"), timeout=60,
                       what="first task", interval=0.005)
            return time.perf_counter() - started


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    one_run(False)  # warm-up (page cache, broker-side declarations): not counted
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for mingle_gossip in (False, True):
            results[mingle_gossip].append(one_run(mingle_gossip))
    for mingle_gossip, times in results.items():
        label = "with mingle+gossip   " if mingle_gossip else "without mingle+gossip"
        print(
            f"{label}: start-to-first-task median {statistics.median(times):.2f}s "
            f"(min {min(times):.2f}s, max {max(times):.2f}s, {runs} runs)"
        )


if __name__ == "__main__":
    with broker():
        main()
