"""Processes the tests and benchmarks start: each in a session of its own with its output in a log file
(taskqueue.children.start_child), stopped by PID, then its process group (children.stop_process)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from taskqueue.children import start_child, stop_process

#: The virtualenv's bin directory: its ``taskqueue``, ``celery`` and ``python``.
VENV_BIN = Path(sys.executable).parent


def start_logged(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``args`` in a session of its own, its output (stdout and stderr) in ``log``, written afresh."""
    log.unlink(missing_ok=True)
    process = start_child(log.stem, args, env, output=log).process
    process.log_path = log  # type: ignore[attr-defined]
    return process


@contextlib.contextmanager
def running(args: Sequence[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` started as :func:`start_logged` does, stopped (SIGTERM, then SIGKILL of its group) by PID
    when the block ends."""
    process = start_logged(args, env, log)
    try:
        yield process
    finally:
        stop_process(process)


@dataclass
class Processes:
    """Starts processes for one test and stops each by its PID (and its own process group) in teardown."""

    log_dir: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: Sequence[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        process = start_logged(args, env, self.log_dir / f"{name}.log")
        self.started.append(process)
        return process

    def taskqueue(self, *args: str, env: dict[str, str], name: str | None = None) -> subprocess.Popen[bytes]:
        return self.start([str(VENV_BIN / "taskqueue"), *args], env, name or "-".join(args))

    @staticmethod
    def output(process: subprocess.Popen[bytes]) -> str:
        path: Path = process.log_path  # type: ignore[attr-defined]
        return path.read_text(errors="replace")

    @classmethod
    def tail(cls, process: subprocess.Popen[bytes], lines: int = 40) -> str:
        return "\n".join(cls.output(process).splitlines()[-lines:])

    @staticmethod
    def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process, wait, escalate to SIGKILL of its group; returns the exit code."""
        return stop_process(process, sig, timeout)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)


#: clock_nanosleep, the system call of ``time.sleep``, by machine (the poison tests wait for it).
SLEEP_SYSCALLS = {"x86_64": "230", "aarch64": "115"}


def in_sleep(pid: int) -> bool:
    """Whether process ``pid`` is inside ``time.sleep`` (unknown machine: after a second, assume so)."""
    number = SLEEP_SYSCALLS.get(os.uname().machine)
    if number is None:
        time.sleep(1.0)
        return True
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] == number
    except (OSError, IndexError):
        return False
