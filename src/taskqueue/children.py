"""Child processes the demo starts and stops itself: by PID, in reverse order, with a bounded wait.

Each child runs in a session of its own, so the terminal's Ctrl-C reaches only the demo, which then stops
the children in order (the producer before the worker, the worker before the broker) instead of all at
once. Each is asked to exit (SIGTERM: the worker's warm shutdown), waited for, and if still there, its
whole process group is SIGKILLed (a worker's pool processes, a broker's helpers). On Linux a child also
gets SIGTERM should the demo itself be killed, so even ``kill -9`` of the demo leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child before exec
    # prctl(PR_SET_PDEATHSIG, SIGTERM): the kernel signals the child when the demo dies, however it dies.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One started process and how to stop it."""

    name: str
    process: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """Signal, wait up to ``stop_timeout``, then SIGKILL the process group; returns the exit code."""
        return stop_process(self.process, self.stop_signal, self.stop_timeout, on_escalate=self._escalating)

    def _escalating(self) -> None:
        print(f"demo: {self.name} (pid {self.pid}) still running after {self.stop_timeout:.0f}s: SIGKILL",
              file=sys.stderr, flush=True)


def stop_process(
    process: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    timeout: float = 30.0,
    *,
    on_escalate: Callable[[], None] | None = None,
) -> int:
    """Stop a process started in its own session: ``sig`` by PID, a bounded wait, then SIGKILL of its
    process group (a worker's pool processes, a broker's helpers); returns the exit code.

    The one way the demo, the tests and the benchmarks stop what they started."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    if process.poll() is None and on_escalate is not None:
        on_escalate()
    # Always, even after a clean exit: whatever the process left in its group (its own session) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait(timeout=10)


def start_child(
    name: str,
    args: Sequence[str],
    env: dict[str, str],
    *,
    output: IO[bytes] | Path | None = None,
    stop_signal: int = signal.SIGTERM,
    stop_timeout: float = 30.0,
) -> Child:
    """Start ``args`` in its own session; output to ``output`` (a file path or stream) or the demo's own."""
    log: IO[bytes] | None = output.open("ab") if isinstance(output, Path) else output
    try:
        process = subprocess.Popen(
            list(args), env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT if log else None, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    finally:
        if isinstance(output, Path) and log is not None:
            log.close()
    return Child(name, process, stop_signal, stop_timeout)


def stop_children(children: list[Child]) -> dict[str, int]:
    """Stop every child, last started first; returns each one's exit code."""
    codes: dict[str, int] = {}
    for child in reversed(children):
        codes[child.name] = child.stop()
    children.clear()
    return codes
