"""The checks a worker runs on each message before Celery sees it, and py-amqp's property decoding made
total (issue 7, item 10). The real worker is tested in tests/integration/test_malformed_messages.py."""

from __future__ import annotations

import json
from typing import Any

import amqp
import pytest
from amqp import serialization
from kombu.exceptions import DecodeError
from kombu.transport.pyamqp import Message as KombuMessage

from taskqueue.consumer import Consumer, decode_properties_or_report, guard_property_decoding
from taskqueue.messages import (
    UNDECODABLE_PROPERTIES,
    body_problem,
    content_problem,
    describe_error,
    header_problem,
    message_problem,
)

ACCEPT = frozenset({"application/json"})
HEADERS = {"lang": "py", "task": "taskqueue.tasks.add", "id": "abc", "retries": 0, "timelimit": [None, None],
           "argsrepr": "(2, 3)", "stamped_headers": None, "stamps": {}}


def kombu_message(body: bytes, headers: dict[str, Any] | None = None, **properties: Any) -> Any:
    """A kombu message as the worker's consumer receives it: the properties through py-amqp's wire format
    and decoder, JSON the only accepted content."""
    sent = amqp.Message(body, application_headers=HEADERS if headers is None else headers,
                        **{"content_type": "application/json", "content_encoding": "utf-8", **properties})
    received = amqp.Message()
    received._load_properties(amqp.Message.CLASS_ID, sent._serialize_properties(), 0)
    received.body = body
    received.delivery_info = {"delivery_tag": 1, "routing_key": "q"}
    message = KombuMessage(received, channel=None)  # type: ignore[no-untyped-call]
    message.accept = ACCEPT
    return message


def test_a_valid_message_has_no_problem() -> None:
    assert message_problem(kombu_message(b'[[2, 3], {}, {"callbacks": null}]'), ACCEPT) is None
    assert message_problem(kombu_message(b"[[2, 3], {}, null]"), ACCEPT) is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"x": 1}, "body must be [args, kwargs, embed], got dict"),
        ([1], "body must be [args, kwargs, embed], got a list of 1 items"),
        ([None, {}, None], "args must be a list, got NoneType"),
        ([[], [], None], "kwargs must be an object, got list"),
        ([[], {}, 5], "embed must be an object or null, got int"),
        ([[], {}, {"chord": None, "x": 1}],
         "embed has keys other than callbacks, chain, chord, errbacks"),
        ([[], {}, {"chain": [{"task": ""}]}], "embed 'chain' must be a list of signatures or null"),
        ([[], {}, {"chord": {"args": []}}], "embed 'chord' must be a signature or null"),
    ],
)
def test_body_problems(body: object, problem: str) -> None:
    assert body_problem(body) == problem
    found = message_problem(kombu_message(json.dumps(body).encode()), ACCEPT)
    assert found == ("malformed task message", problem)


def test_signatures_in_the_embed_are_accepted() -> None:
    signature = {"task": "taskqueue.tasks.add", "args": [1], "kwargs": {}, "options": {}}
    embed = {"callbacks": [signature], "chain": [signature], "chord": signature}
    assert body_problem([[2, 3], {}, embed]) is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"id": None}, "header 'id' must be a non-empty string, got NoneType"),
        ({"task": b"taskqueue.tasks.add"}, "header 'task' must be a non-empty string, got bytes"),
        ({"retries": -1}, "header 'retries' must be a non-negative integer, got int"),
        ({"retries": True}, "header 'retries' must be a non-negative integer, got bool"),
        ({"timelimit": [1.5, float("inf")]},
         "header 'timelimit' must be [hard, soft]: two non-negative numbers or nulls"),
        ({"eta": "2030-01-01T00:00:00+00:00x"},
         "header 'eta' must be an ISO 8601 date string, got one that does not parse"),
        ({"expires": "9999-12-31T23:59:59"}, "header 'expires' must be a date from 1971 to 9998"),
        ({"group_index": -2}, "header 'group_index' must be a non-negative integer, got int"),
        ({"stamps": [1]}, "header 'stamps' must be a table with string keys or null, got list"),
        ({"stamped_headers": ["a", 1]}, "header 'stamped_headers' must be a list of strings or null"),
        ({"headers": {}}, "header 'headers' is reserved for the worker's own use"),
        ({"_children": []}, "header '_children' is reserved for the worker's own use"),
        ({"custom": object()}, "header 'custom' is not plain data"),
        ({"custom": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
         "header 'custom' is not plain data"),  # deeper than 32 levels
    ],
)
def test_header_problems(changes: dict[str, Any], problem: str) -> None:
    assert header_problem({**HEADERS, **changes}) == problem


def test_plain_custom_headers_and_dates_are_accepted() -> None:
    custom = {"x-death": [{"count": 1, "reason": "rejected", "queue": "q"}], "tenant": "a", "eta": None,
              "expires": "2030-01-01T00:00:00+00:00", "timelimit": [60, 30.5], "ignore_result": True}
    assert header_problem({**HEADERS, **custom}) is None


@pytest.mark.parametrize(
    ("content_type", "encoding", "problem"),
    [
        ("application/json", "utf-8", None),
        ("application/json", "UTF8", None),
        ("application/json", None, None),
        ("application/data", "utf-8",
         "content type 'application/data' is not accepted (only application/json)"),
        (None, "utf-8", "content type NoneType is not accepted (only application/json)"),
        ("application/json", "latin-1", "content encoding must be utf-8"),
        ("application/json", "no-such-codec", "content encoding must be utf-8"),
    ],
)
def test_content_problems(content_type: object, encoding: object, problem: str | None) -> None:
    assert content_problem(content_type, encoding, ACCEPT) == problem


def test_protocol_1_and_undecodable_messages() -> None:
    assert message_problem(kombu_message(b'{"task": "t", "id": "x", "args": []}', headers={}), ACCEPT) == (
        "malformed task message", "no 'task' header (not a task message of Celery's protocol 2)"
    )
    assert message_problem(kombu_message(b"[[2, 3], {}"), ACCEPT) == (
        "undecodable message",
        "DecodeError (JSONDecodeError): Expecting ',' delimiter: line 1 column 12 (char 11)",
    )


def test_decoding_errors_are_described_without_content() -> None:
    # kombu's type-tagged JSON quotes what it read: only the class is shown.
    wrapped = DecodeError(ValueError("Unsupported type", {"__type__": "secret", "__value__": 1}))
    assert describe_error(wrapped) == "DecodeError (ValueError)"
    assert describe_error(KeyError("secret")) == "KeyError"


def test_properties_py_amqp_cannot_decode_become_a_problem_not_an_exception() -> None:
    # A content type that is not UTF-8: py-amqp's own decoder raises from the connection's frame reader.
    wire = amqp.Message(content_type=b"\xff\xfe", application_headers={"task": "t"})._serialize_properties()
    with pytest.raises(UnicodeDecodeError):
        serialization.decode_properties_basic(wire, 0)
    properties, _ = decode_properties_or_report(wire, 0)
    assert properties == {
        UNDECODABLE_PROPERTIES: "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: "
        "invalid start byte",
    }
    good = amqp.Message(content_type="application/json")._serialize_properties()
    assert decode_properties_or_report(good, 0)[0] == {"content_type": "application/json"}


def test_the_worker_consumer_installs_the_total_decoder() -> None:
    original = serialization.PROPERTY_CLASSES[serialization.Basic.CLASS_ID]
    try:
        guard_property_decoding()
        guard_property_decoding()  # idempotent
        assert serialization.PROPERTY_CLASSES[serialization.Basic.CLASS_ID] is decode_properties_or_report
        message = kombu_message(b"[]", content_type=b"\xff")
        assert UNDECODABLE_PROPERTIES in message.properties
        assert message_problem(message, ACCEPT) == (
            "undecodable message",
            "AMQP properties: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: "
            "invalid start byte",
        )
    finally:
        serialization.PROPERTY_CLASSES[serialization.Basic.CLASS_ID] = original


class Settled:
    """A message that passes every check, and what happened to it."""

    def __init__(self, acknowledged: bool = False) -> None:
        self.inner = kombu_message(b"[[2, 3], {}, null]")
        self.acknowledged = acknowledged

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ConsumerStub:
    """What Consumer.take uses of the consumer."""

    accepted_types = ACCEPT
    connection_errors = (ConnectionError,)
    channel_errors = (amqp.exceptions.ChannelError,)
    taskqueue_acks = None  # no event loop: acks go out one by one

    def __init__(self) -> None:
        self.rejected: list[tuple[str, str]] = []

    def reject(self, message: Any, kind: str, reason: str) -> None:
        self.rejected.append((kind, reason))


def fail_with(exc: BaseException) -> Any:
    def handle(message: Any) -> None:
        raise exc

    return handle


def test_what_celery_still_raises_for_a_message_is_rejected_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = ConsumerStub()
    Consumer.take(stub, Settled(), fail_with(KeyError("secret")))  # type: ignore[arg-type]
    assert stub.rejected == [("task message", "the worker could not take it: KeyError")]
    # Already settled by Celery: logged, not rejected a second time (a second settle closes the channel).
    with caplog.at_level("ERROR", logger="taskqueue.consumer"):
        Consumer.take(stub, Settled(acknowledged=True), fail_with(ValueError("secret")))  # type: ignore[arg-type]
    assert len(stub.rejected) == 1
    assert [record.getMessage().split(" (content type")[0] for record in caplog.records] == [
        "task message failed after it was settled: the worker could not take it: ValueError"
    ]
    assert "secret" not in caplog.text


def test_a_lost_connection_still_reaches_celery() -> None:
    stub = ConsumerStub()
    for error in (ConnectionError("gone"), amqp.exceptions.ChannelError("closed")):
        with pytest.raises(type(error)):
            Consumer.take(stub, Settled(), fail_with(error))  # type: ignore[arg-type]
    assert stub.rejected == []


def test_checked_messages_reach_celery_and_malformed_ones_do_not() -> None:
    stub = ConsumerStub()
    handled: list[Any] = []
    Consumer.take(stub, Settled(), handled.append)  # type: ignore[arg-type]
    assert len(handled) == 1 and stub.rejected == []
    Consumer.take(stub, kombu_message(b'{"x": 1}'), handled.append)  # type: ignore[arg-type]
    assert len(handled) == 1
    assert stub.rejected == [("malformed task message", "body must be [args, kwargs, embed], got dict")]
