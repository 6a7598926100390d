"""CPU time (user+sys of the child) and wall time of one ``taskqueue health worker`` vs one
``celery -A taskqueue.app inspect ping`` against a live worker, and of ``taskqueue health producer``
(readiness and ``--liveness``) against a live producer; median of several runs.

    python benchmarks/bench_health.py [runs]
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import VENV_BIN, bench_queue, broker, taskqueue, wait_until, workdir, worker, worker_env


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(cpu seconds of the child, wall seconds, exit code) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    code = subprocess.run(command, env=env, capture_output=True, check=False).returncode
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, code


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with workdir() as tmp, bench_queue() as queue:
        env = worker_env(queue, Path(tmp))
        with (
            worker(env, Path(tmp) / "worker.log") as process,
            taskqueue(["produce", "--interval", "3600"], env, Path(tmp) / "producer.log"),
        ):
            health = [str(VENV_BIN / "taskqueue"), "health", "worker"]
            producer = [str(VENV_BIN / "taskqueue"), "health", "producer"]
            wait_until(lambda: measure(health, env)[2] == 0, timeout=60, what="worker healthy")
            wait_until(lambda: measure(producer, env)[2] == 0, timeout=60, what="producer healthy")
            ping = [str(VENV_BIN / "celery"), "-A", "taskqueue.app", "inspect", "ping",
                    "-d", f"celery.{process.pid}@{subprocess.getoutput('hostname')}", "--timeout", "1"]
            commands = {
                "taskqueue health worker": health,
                "celery inspect ping": ping,
                "taskqueue health producer": producer,
                "health producer --liveness": [*producer, "--liveness"],
            }
            results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in commands}
            for _ in range(runs):
                for name, command in commands.items():
                    results[name].append(measure(command, env))
    for name, samples in results.items():
        cpu = statistics.median(sample[0] for sample in samples)
        wall = statistics.median(sample[1] for sample in samples)
        codes = sorted({sample[2] for sample in samples})
        print(
            f"{name:27s}: CPU {cpu * 1000:6.0f} ms, wall {wall * 1000:6.0f} ms "
            f"(median of {runs}; exit {codes})"
        )


if __name__ == "__main__":
    with broker():
        main()
