"""The private node's ports: free, and outside the range client sockets take their local ports from, so a
node restarted on the same ports cannot find one taken by a client meanwhile."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from taskqueue import private_broker
from taskqueue.private_broker import free_port, listen_port_range


def test_listen_ports_end_where_the_ephemeral_range_begins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("40000\t60999\n")
    monkeypatch.setattr(private_broker, "EPHEMERAL_RANGE_FILE", ranges)
    assert listen_port_range() == range(30000, 40000)
    monkeypatch.setattr(private_broker, "EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    assert listen_port_range() == range(22768, 32768)


def test_free_port_is_bindable_and_below_the_ephemeral_range() -> None:
    port = free_port()
    assert port in listen_port_range()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
