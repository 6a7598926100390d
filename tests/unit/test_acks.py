"""The batcher of late acks, on a channel that records what would go to the broker."""

from __future__ import annotations

from typing import Any

from taskqueue.acks import AckBatcher


class RecordingChannel:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.sent.append(("ack", delivery_tag, multiple))

    def basic_reject(self, delivery_tag: int, requeue: bool) -> None:
        self.sent.append(("reject", delivery_tag, requeue))


def batcher_with(*delivered: int, prefetch: int = 64) -> tuple[RecordingChannel, AckBatcher]:
    channel = RecordingChannel()
    batcher = AckBatcher(channel, prefetch)
    for tag in delivered:
        batcher.delivered(tag)
    return channel, batcher


def test_acks_wait_for_the_flush_and_go_as_one_multiple_ack() -> None:
    channel, batcher = batcher_with(1, 2, 3)
    for tag in (1, 2, 3):
        channel.basic_ack(tag)  # what kombu's Message.ack calls
    assert channel.sent == []
    batcher.flush()
    assert channel.sent == [("ack", 3, True)]
    assert batcher.outstanding == set()
    batcher.flush()
    assert channel.sent == [("ack", 3, True)]


def test_a_held_message_is_never_covered_by_a_multiple_ack() -> None:
    # 2 is held (an ETA task, a task still running in a pool process): 1 goes by multiple, 3 and 4 alone.
    channel, batcher = batcher_with(1, 2, 3, 4)
    for tag in (4, 1, 3):
        channel.basic_ack(tag)
    batcher.flush()
    assert channel.sent == [("ack", 1, True), ("ack", 3, False), ("ack", 4, False)]
    assert batcher.outstanding == {2}
    channel.basic_ack(2)
    batcher.flush()
    assert channel.sent[-1] == ("ack", 2, True)


def test_rejections_go_out_at_once_and_leave_the_batch() -> None:
    channel, batcher = batcher_with(1, 2, 3)
    channel.basic_ack(1)
    channel.basic_reject(2, False)
    channel.basic_ack(3)
    assert channel.sent == [("reject", 2, False)]
    batcher.flush()
    assert channel.sent == [("reject", 2, False), ("ack", 3, True)]


def test_an_untracked_or_multiple_ack_goes_out_at_once_after_the_held_ones() -> None:
    channel, _batcher = batcher_with(1)
    channel.basic_ack(1)
    channel.basic_ack(9)
    assert channel.sent == [("ack", 1, True), ("ack", 9, False)]


def test_a_quarter_of_the_prefetch_count_flushes_without_waiting_for_the_turn() -> None:
    # The broker sends more only once it has acks: holding a whole prefetch-full would stall the worker.
    channel, _batcher = batcher_with(*range(1, 17), prefetch=16)
    for tag in range(1, 9):
        channel.basic_ack(tag)
    assert channel.sent == [("ack", 4, True), ("ack", 8, True)]


def test_without_a_prefetch_count_each_ack_goes_at_once() -> None:
    channel, _batcher = batcher_with(1, 2, prefetch=0)
    channel.basic_ack(1)
    channel.basic_ack(2)
    assert channel.sent == [("ack", 1, True), ("ack", 2, True)]
