"""Free TCP ports for the services tests and benchmarks start: the private broker's own bind probe
(taskqueue.private_broker), not a second one."""

from __future__ import annotations

from taskqueue.private_broker import first_bindable
from taskqueue.private_broker import free_port as free_listen_port


def free_port(start: int | None = None, host: str = "127.0.0.1") -> int:
    """A TCP port nobody is bound to on ``host``: the first free one of the hundred from ``start``, else
    one below the kernel's ephemeral range (so no client socket takes it meanwhile)."""
    if start is None:
        return free_listen_port(host)
    port = first_bindable(range(start, min(start + 100, 65536)), host)
    if port is None:
        raise AssertionError(f"no free port in {start}-{min(start + 100, 65536) - 1}")
    return port
