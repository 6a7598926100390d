"""Whatever arrives in the work queue, a real worker keeps serving: what it cannot run ends in
``<queue>.dead-letter`` with one log line (issue 7, item 10).

Messages are published raw with py-amqp (exact bodies, headers and properties, even ones kombu would not
produce), one at a time, to the queue of one worker shared by this module. Each must come out of the
dead-letter queue, rejected by that worker (``x-death``), with exactly one new log line, the worker alive
and no traceback in its log. ``CORPUS`` keeps the known cases, each with the exact reason logged (most
stopped the worker before the fix, see each entry); ``test_fuzzed_malformed_messages`` generates more with
Hypothesis: a valid task message, random noise in the fields that do not decide, and one to three
mutations each of which makes the message impossible to run. A case the fuzzer finds goes into CORPUS.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import struct
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import amqp
import pytest
from amqp import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu.connection import Connection

from taskqueue.app import ADD_TASK, create_app, dead_letter_queue_name, remove_task_queue
from taskqueue.config import Settings
from tests.support.processes import Processes
from tests.support.runtime import runtime_environment, with_fast_heartbeat
from tests.support.waiting import wait_until
from tests.support.workers import health_of, start_worker

pytestmark = pytest.mark.integration

#: Seconds one message may take to reach the dead-letter queue.
ROUND_TRIP_TIMEOUT = 20.0
#: What the worker logs for each message it rejects (taskqueue.consumer).
REJECTED = " rejected to the dead-letter queue: "


class BeyondYear9999(int):
    """A header timestamp (AMQP type ``T``, seconds) past what Python's datetime holds; py-amqp cannot
    write one, so :func:`raw_timestamps` does."""


@contextlib.contextmanager
def raw_timestamps() -> Iterator[None]:
    """Let py-amqp write :class:`BeyondYear9999` values as they are (this test process only)."""
    write_item = serialization._write_item

    def write(value: Any, out: Callable[[bytes], Any], bits: Any) -> None:
        if isinstance(value, BeyondYear9999):
            out(struct.pack(">cQ", b"T", int(value)))
        else:
            write_item(value, out, bits)

    serialization._write_item = write
    try:
        yield
    finally:
        serialization._write_item = write_item


@dataclass(frozen=True)
class Raw:
    """One AMQP message as published: body bytes, headers and the other properties, as they are."""

    body: bytes
    headers: dict[Any, Any]
    properties: dict[str, Any] = field(default_factory=dict)
    #: False if py-amqp cannot decode its properties: then this test cannot read it back either, only
    #: count it.
    decodable: bool = True


def task_headers(**changes: Any) -> dict[str, Any]:
    """Headers of a valid ``add`` message as Celery sends them; ``name=DROP`` removes one."""
    headers: dict[str, Any] = {
        "lang": "py", "task": ADD_TASK, "id": str(uuid.uuid4()), "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
        "root_id": None, "parent_id": None, "argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "test",
        "ignore_result": False, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    headers.update(changes)
    return {name: value for name, value in headers.items() if value is not DROP}


DROP = object()
JSON = {"content_type": "application/json", "content_encoding": "utf-8"}
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
VALID_BODY = json.dumps([[2, 3], {}, EMBED]).encode()


def message(body: bytes = VALID_BODY, properties: dict[str, Any] | None = None, decodable: bool = True,
            **headers: Any) -> Raw:
    return Raw(body, task_headers(**headers), {**JSON, **(properties or {})}, decodable)


def body_case(case: str, body: bytes, got: str) -> tuple[str, Raw, str]:
    """A CORPUS case of a body that is not [args, kwargs, embed]: valid headers, ``body``."""
    return case, message(body), f"malformed task message: body must be [args, kwargs, embed], got {got}"


#: (case, message, what the worker logs after "<kind> rejected to the dead-letter queue: ", up to the
#: message's description). The comments say what the worker did with each before the fix (this corpus run
#: against the former consumer). "Crashed": CRITICAL Unrecoverable error, exit 1, the message back in the
#: queue for the next worker; "ran": taken as a task; "multi-line": rejected, logged with a traceback and
#: the body.
CORPUS: list[tuple[str, Raw, str]] = [
    # Crashed: ValueError('not enough values to unpack (expected 3, got 1)') (the example).
    body_case("body-object", b'{"x": 1}', "dict"),
    # Crashed: ValueError('not enough values to unpack (expected 3, got 1)').
    body_case("body-list-of-one", b"[1]", "a list of 1 items"),
    # Crashed: ValueError('too many values to unpack (expected 3)').
    body_case("body-list-of-four", b"[[], {}, {}, {}]", "a list of 4 items"),
    # Crashed: TypeError("argument of type 'NoneType' is not iterable").
    body_case("body-null", b"null", "NoneType"),
    # Crashed: TypeError("argument of type 'int' is not iterable").
    body_case("body-number", b"5", "int"),
    # Found by the fuzzer. Crashed: ValueError('not enough values to unpack (expected 3, got 0)').
    body_case("body-empty", b"", "str"),
    # Ran with args "a", kwargs "b"; the failure callback raised (TypeError in Request._context), so the
    # message was never acknowledged: it stayed unacked until the worker's connection closed.
    body_case("body-string", b'"abc"', "str"),
    # Ran, failed: TypeError (argument after * must be an iterable).
    ("args-not-a-list", message(b"[5, {}, null]"), "malformed task message: args must be a list, got int"),
    # Found by the fuzzer. Ran, failed: TypeError (argument after * must be an iterable, not NoneType).
    ("args-null", message(b"[null, {}, null]"), "malformed task message: args must be a list, got NoneType"),
    # Ran: InvalidTaskError raised outside the task body, a traceback in the log.
    ("kwargs-not-an-object", message(b"[[2, 3], [], null]"),
     "malformed task message: kwargs must be an object, got list"),
    # Ran; the failure callback raised, the message stayed unacked (as body-string).
    ("embed-not-an-object", message(b"[[2, 3], {}, 5]"),
     "malformed task message: embed must be an object or null, got int"),
    # Ran: its keys became attributes of the task's request. Each case below marked "ran" returned 5.
    ("embed-unknown-key", message(b'[[2, 3], {}, {"hostname": "x"}]'),
     "malformed task message: embed has keys other than callbacks, chain, chord, errbacks"),
    # Ran, then failed after the task: AttributeError("'int' object has no attribute '_app'").
    ("embed-callback-not-a-signature", message(b'[[2, 3], {}, {"callbacks": [5]}]'),
     "malformed task message: embed 'callbacks' must be a list of signatures or null"),
    # Crashed: KeyError('id') (the second example).
    ("no-id", message(id=DROP), "malformed task message: no 'id' header"),
    ("id-not-text", message(id=5),  # ran
     "malformed task message: header 'id' must be a non-empty string, got int"),
    ("id-empty", message(id=""),  # ran
     "malformed task message: header 'id' must be a non-empty string, got str"),
    # Crashed: KeyError('id') in on_unknown_task, then TypeError('list indices must be integers or slices,
    # not str') reading the body as protocol 1.
    ("unknown-task-without-id", message(task="no.such.task", id=DROP),
     "malformed task message: no 'id' header"),
    # Multi-line ("Received unregistered task of type 5", the body).
    ("task-not-text", message(task=5),
     "malformed task message: header 'task' must be a non-empty string, got int"),
    # Found by the fuzzer. Multi-line ("Received unregistered task of type ''", the body).
    ("task-empty", message(task=""),
     "malformed task message: header 'task' must be a non-empty string, got str"),
    # Protocol 1 (the task in the body): ran; refused now, no client of ours sends it.
    ("protocol-1", Raw(json.dumps({"task": ADD_TASK, "id": "p1", "args": [2, 3], "kwargs": {}}).encode(), {},
                       dict(JSON)),
     "malformed task message: no 'task' header (not a task message of Celery's protocol 2)"),
    # Protocol 2 headers with a protocol 1 body ("hybrid"): ran.
    body_case("hybrid", json.dumps({"args": [2, 3], "kwargs": {}}).encode(), "dict"),
    # Crashed (after "received"): ValueError('too many values to unpack (expected 2)') handing it to the
    # pool.
    ("timelimit-three-items", message(timelimit=[1, 2, 3]),
     "malformed task message: header 'timelimit' must be [hard, soft]: two non-negative numbers or nulls"),
    # Crashed: ValueError("could not convert string to float: 'b'").
    ("timelimit-text", message(timelimit="ab"),
     "malformed task message: header 'timelimit' must be [hard, soft]: two non-negative numbers or nulls"),
    ("timelimit-negative", message(timelimit=[-1, None]),  # ran
     "malformed task message: header 'timelimit' must be [hard, soft]: two non-negative numbers or nulls"),
    ("retries-text", message(retries="x"),  # ran
     "malformed task message: header 'retries' must be a non-negative integer, got str"),
    ("argsrepr-not-text", message(argsrepr=5),  # ran
     "malformed task message: header 'argsrepr' must be a string or null, got int"),
    # Multi-line (Celery's own InvalidTaskError).
    ("eta-not-a-date", message(eta="soon"),
     "malformed task message: header 'eta' must be an ISO 8601 date string, got one that does not parse"),
    ("eta-a-number", message(eta=5),  # multi-line
     "malformed task message: header 'eta' must be an ISO 8601 date string or null, got int"),
    # Discarded as revoked (acknowledged: lost, not dead-lettered).
    ("expires-year-1", message(expires="0001-01-01T00:00:00"),
     "malformed task message: header 'expires' must be a date from 1971 to 9998"),
    ("ignore-result-text", message(ignore_result="yes"),  # ran
     "malformed task message: header 'ignore_result' must be a boolean or null, got str"),
    ("stamp-missing", message(stamped_headers=["mark"], stamps={}),  # ran
     "malformed task message: header 'stamped_headers' names a stamp missing from header 'stamps'"),
    ("reserved-header", message(chord="x"),  # ran
     "malformed task message: header 'chord' is reserved for the worker's own use"),
    ("private-header", message(_protected=1),  # ran
     "malformed task message: header '_protected' is reserved for the worker's own use"),
    # Ran (py-amqp hands over a name that is not UTF-8 as bytes).
    ("header-name-not-utf8", Raw(VALID_BODY, {**task_headers(), b"\xff": 1}, dict(JSON)),
     "malformed task message: header names must be text"),
    # Crashed: ValueError('too many values to unpack (expected 3)'): kombu hands over the raw body of its
    # "trusted" types, and of a message without a content type.
    ("content-type-application-data", message(properties={"content_type": "application/data"}),
     "undecodable message: content type 'application/data' is not accepted (only application/json)"),
    ("no-content-type", Raw(VALID_BODY, task_headers(), {"content_encoding": "utf-8"}),
     "undecodable message: content type NoneType is not accepted (only application/json)"),
    # Multi-line (ContentDisallowed, the body).
    ("content-type-pickle", message(properties={"content_type": "application/x-python-serialize"}),
     "undecodable message: content type 'application/x-python-serialize' is not accepted (only "
     "application/json)"),
    # Ran, as the next one.
    ("content-encoding-unknown", message(properties={"content_encoding": "no-such-codec"}),
     "undecodable message: content encoding must be utf-8"),
    ("content-encoding-latin-1", message(properties={"content_encoding": "latin-1"}),
     "undecodable message: content encoding must be utf-8"),
    # Dead-lettered already by the former consumer, in one line.
    ("body-not-json", message(b"\xff not json"),
     "undecodable message: DecodeError (UnicodeDecodeError): 'utf-8' codec can't decode byte 0xff in "
     "position 0: invalid start byte"),
    ("body-truncated-json", message(b"[[2, 3], {}"),
     "undecodable message: DecodeError (JSONDecodeError): Expecting ',' delimiter: line 1 column 12 "
     "(char 11)"),
    # Crashed, as the next one: UnicodeDecodeError in py-amqp's frame reader (a property that is not UTF-8):
    # the worker died before Celery saw the message (celery/py-amqp#277).
    ("content-type-not-utf8", message(properties={"content_type": b"\xff\xfe"}, decodable=False),
     "undecodable message: AMQP properties: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in "
     "position 0: invalid start byte"),
    ("reply-to-not-utf8", message(properties={"reply_to": b"\xc3"}, decodable=False),
     "undecodable message: AMQP properties: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xc3 in "
     "position 0: unexpected end of data"),
    # Crashed: OverflowError('timestamp out of range for platform time_t') in py-amqp's frame reader.
    ("header-timestamp-beyond-9999", message(decodable=False, sent=BeyondYear9999(2**63)),
     "undecodable message: AMQP properties: OverflowError: timestamp out of range for platform time_t"),
]


@dataclass
class Target:
    """The module's worker and its queue, and a way to send one message through them."""

    processes: Processes
    env: dict[str, str]
    starts: int = 0
    worker: subprocess.Popen[bytes] | None = None

    @property
    def queue(self) -> str:
        return self.env["QUEUE_NAME"]

    @property
    def broker_url(self) -> str:
        return self.env["BROKER_URL"]

    def depth(self, queue: str, connection: Any = None) -> int:
        if connection is None:
            with Connection(self.broker_url) as fresh:  # type: ignore[no-untyped-call]
                return self.depth(queue, fresh)
        return int(connection.default_channel.queue_declare(queue, passive=True).message_count)

    def serving(self) -> subprocess.Popen[bytes]:
        """The worker, started again if a message stopped it (after dropping what is queued: the message
        that stopped it would stop the next one too), so that each case is judged on its own."""
        if self.worker is None or self.worker.poll() is not None:
            with Connection(self.broker_url) as connection:  # type: ignore[no-untyped-call]
                for queue in (self.queue, dead_letter_queue_name(self.queue)):
                    with contextlib.suppress(Exception):
                        connection.channel().queue_purge(queue)
            self.starts += 1
            self.worker = start_worker(self.processes, self.env, name=f"worker-{self.starts}")
        return self.worker

    def log(self) -> str:
        return self.processes.output(self.serving())

    def publish(self, raw: Raw, message_id: str) -> None:
        properties = {**raw.properties, "message_id": message_id}
        with Connection(self.broker_url) as connection, raw_timestamps():  # type: ignore[no-untyped-call]
            channel = connection.connection.channel()
            channel.confirm_select()
            channel.basic_publish_confirm(
                amqp.Message(raw.body, application_headers=raw.headers, **properties),
                exchange="", routing_key=self.queue,
            )

    def round_trip(self, raw: Raw) -> str:
        """Publish ``raw``; wait for it in the dead-letter queue, rejected by the worker, which must be
        alive and must not have taken it as a task; return the one log line the worker wrote about it."""
        worker = self.serving()
        before = self.processes.output(worker)
        message_id = f"case-{uuid.uuid4()}"
        self.publish(raw, message_id)
        dead_letter = dead_letter_queue_name(self.queue)

        def dead_lettered() -> bool:
            if "] received" in self.processes.output(worker)[len(before):]:
                # Say whether it then stopped the worker too (and let the next case start a new one).
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(timeout=2)
                ended = "" if worker.poll() is None else f", and the worker exited with {worker.returncode}"
                raise AssertionError(f"the worker took it as a task{ended}:\n{new_output()}")
            if worker.poll() is not None:
                raise AssertionError(f"the worker exited with {worker.returncode}:\n{new_output()}")
            return self.depth(dead_letter, connection) >= 1

        def new_output() -> str:
            return self.processes.output(worker)[len(before):]

        with Connection(self.broker_url) as connection:  # type: ignore[no-untyped-call]
            wait_until(dead_lettered, timeout=ROUND_TRIP_TIMEOUT, interval=0.05,
                       what="the dead-lettered message", detail=new_output)
            channel = connection.default_channel
            if raw.decodable:
                got = channel.basic_get(dead_letter, no_ack=True)
                assert got.properties["message_id"] == message_id
                death = got.headers["x-death"][0]
                assert (death["queue"], death["reason"], death["count"]) == (self.queue, "rejected", 1)
            else:
                # py-amqp cannot read it back here either: count it, then drop it.
                assert channel.queue_purge(dead_letter) == 1
            assert self.depth(dead_letter, connection) == 0
            assert self.depth(self.queue, connection) == 0
        lines = wait_until(lambda: [line for line in new_output().splitlines() if line.strip()], timeout=5,
                           what="the worker's log line")
        assert worker.poll() is None
        assert len(lines) == 1, lines  # one line, no traceback, no body
        return lines[0]


@pytest.fixture(scope="module")
def target(
    broker_url: str, test_queues: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    directory = tmp_path_factory.mktemp("malformed")
    queue = f"test-{uuid.uuid4().hex[:12]}"
    test_queues.append(queue)
    processes = Processes(log_dir=directory)
    target = Target(processes, with_fast_heartbeat(runtime_environment(broker_url, queue, directory)))
    try:
        yield target
    finally:
        processes.stop_all()
        with Connection(broker_url) as connection:  # type: ignore[no-untyped-call]
            remove_task_queue(connection, queue)


def logged_reason(line: str) -> str:
    """``<kind> rejected to the dead-letter queue: <reason>`` of a worker's log line, without the time
    stamp before it and the message's description after it."""
    text = line.partition("] ")[2]
    kind, found, rest = text.partition(REJECTED)
    assert found, line
    return f"{kind}: {rest.rpartition(' (content type ')[0]}"


@pytest.mark.parametrize(
    ("raw", "reason"), [pytest.param(raw, reason, id=case) for case, raw, reason in CORPUS]
)
def test_corpus_message_is_dead_lettered_and_the_worker_keeps_serving(
    target: Target, raw: Raw, reason: str
) -> None:
    line = target.round_trip(raw)
    assert logged_reason(line) == reason
    assert "ERROR/MainProcess" in line


def test_the_worker_still_runs_add_after_the_corpus(target: Target) -> None:
    worker = target.serving()
    client = create_app(Settings(broker_url=target.broker_url, queue_name=target.queue))  # type: ignore[arg-type]
    try:
        assert client.send_task(ADD_TASK, args=(2, 3)).get(timeout=30) == 5
    finally:
        client.close()
    assert health_of(target.env).healthy
    output = target.processes.output(worker)
    assert "CRITICAL" not in output and "Traceback" not in output


# --- The fuzzer -----------------------------------------------------------------------------------------

text = st.text(max_size=20)
#: What an AMQP table can carry to RabbitMQ (it refuses NaN and infinities: INTERNAL_ERROR).
amqp_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), text, st.binary(max_size=20),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda moment: moment.replace(microsecond=0)
    ),
    st.builds(lambda n, e: Decimal(n).scaleb(-e), st.integers(-(2**31) + 1, 2**31 - 1), st.integers(0, 9)),
)
#: Header names: AMQP short strings (at most 255 bytes).
names = st.text(min_size=1, max_size=30)
amqp_values = st.recursive(
    amqp_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=8,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=8,
)
#: Protocol 2's headers: noise uses other names.
PROTOCOL_HEADERS = set(task_headers()) | {"meth", "compression"}
#: Names the worker keeps for itself (some of them).
RESERVED = ["args", "kwargs", "callbacks", "errbacks", "chain", "chord", "delivery_info", "hostname",
            "headers", "properties", "reply_to", "correlation_id", "is_eager", "called_directly", "utc",
            "loglevel"]
noise_names = names.filter(lambda name: name not in PROTOCOL_HEADERS and name not in RESERVED
                           and not name.startswith("_"))


@st.composite
def valid_messages(draw: st.DrawFn) -> Raw:
    """A task message the worker would run, with random arguments, extra headers and properties."""
    headers = task_headers(**draw(st.dictionaries(noise_names, amqp_values, max_size=3)))
    args = draw(st.lists(json_values, max_size=3))
    kwargs = draw(st.dictionaries(text, json_values, max_size=2))
    embed = draw(st.sampled_from([None, EMBED]))
    properties = draw(st.fixed_dictionaries({}, optional={
        "correlation_id": text, "reply_to": text, "priority": st.integers(0, 255),
        "delivery_mode": st.sampled_from([1, 2]), "type": text, "app_id": text,
        "timestamp": st.integers(0, 2**64 - 1),  # seconds; py-amqp leaves them a number
    }))
    return Raw(json.dumps([args, kwargs, embed]).encode(), headers, {**JSON, **properties})


def not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return True
    return False


def not_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return True
    return False


def is_utf8_name(name: str) -> bool:
    try:
        return codecs.lookup(name).name == "utf-8"
    except LookupError:
        return False


Mutation = Callable[[Raw], Raw]


def set_header(name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Mutation]:
    return values.map(lambda value: lambda raw: replace(raw, headers={**raw.headers, name: value}))


def drop_header(name: str) -> st.SearchStrategy[Mutation]:
    return st.just(lambda raw: replace(raw, headers={k: v for k, v in raw.headers.items() if k != name}))


def set_body(bodies: st.SearchStrategy[bytes]) -> st.SearchStrategy[Mutation]:
    return bodies.map(lambda body: lambda raw: replace(raw, body=body))


def set_property(
    name: str, values: st.SearchStrategy[Any], decodable: bool = True
) -> st.SearchStrategy[Mutation]:
    def mutation(value: Any) -> Mutation:
        def apply(raw: Raw) -> Raw:
            properties = {key: item for key, item in raw.properties.items() if key != name}
            if value is not None:
                properties[name] = value
            return replace(raw, properties=properties, decodable=raw.decodable and decodable)
        return apply
    return values.map(mutation)


def dumped(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return values.map(lambda value: json.dumps(value).encode())


def arrived(value: Any) -> Any:
    """``value`` as the worker receives it in a header: py-amqp sends bytes as a long string and decodes
    it to text when it is UTF-8."""
    if isinstance(value, bytes) and not not_utf8(value):
        return value.decode("utf-8", "surrogatepass")
    if isinstance(value, list):
        return [arrived(item) for item in value]
    if isinstance(value, dict):
        return {key: arrived(item) for key, item in value.items()}
    return value


non_text = amqp_values.filter(lambda value: not isinstance(arrived(value), str))
non_text_or_null = non_text.filter(lambda value: value is not None)
non_count = amqp_values.filter(lambda value: not (isinstance(value, int) and not isinstance(value, bool)))
negative = st.integers(-(2**63), -1)
bad_embeds = st.one_of(
    json_values.filter(lambda value: value is not None and not isinstance(value, dict)),
    st.dictionaries(text.filter(lambda key: key not in EMBED), json_values, min_size=1, max_size=2),
    st.builds(lambda key, value: {key: value}, st.sampled_from(["callbacks", "errbacks", "chain"]),
              json_values.filter(lambda value: value is not None and not isinstance(value, list))),
    st.builds(lambda key, items: {key: items}, st.sampled_from(["callbacks", "errbacks", "chain"]),
              st.lists(json_values.filter(lambda value: not isinstance(value, dict)), min_size=1,
                       max_size=2)),
)

#: Each makes a valid message impossible to run, whatever the rest of it holds.
MUTATIONS: list[st.SearchStrategy[Mutation]] = [
    # The body: not JSON, not the triple, or a triple of the wrong parts.
    set_body(st.binary(max_size=40).filter(not_json)),
    set_body(dumped(json_values.filter(lambda value: not (isinstance(value, list) and len(value) == 3)))),
    set_body(dumped(st.tuples(json_values.filter(lambda value: not isinstance(value, list)), st.just({}),
                              st.none()))),
    set_body(dumped(st.tuples(st.just([]), json_values.filter(lambda value: not isinstance(value, dict)),
                              st.none()))),
    set_body(dumped(st.tuples(st.just([2, 3]), st.just({}), bad_embeds))),
    # The required headers: missing, empty or not text; and the task unknown.
    drop_header("id"), set_header("id", non_text | st.just("")),
    drop_header("task"), set_header("task", non_text | st.just("")),
    set_header("task", text.map(lambda name: f"x.{name}")),  # unknown: no task is called so
    # The optional headers Celery reads, each of another type than the protocol's.
    *[set_header(name, non_text_or_null) for name in
      ("lang", "shadow", "group", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "meth",
       "compression")],
    *[set_header(name, non_count | negative) for name in ("retries", "replaced_task_nesting")],
    set_header("group_index", non_count.filter(lambda value: value is not None) | negative),
    *[set_header(name, non_text_or_null | st.text(alphabet="abcxyz", min_size=1, max_size=10)
                 | st.sampled_from(["0001-01-01", "9999-12-31T23:59:59", "1900-05-05T00:00:00+01:00"]))
      for name in ("eta", "expires")],
    set_header("timelimit", amqp_values.filter(lambda value: not isinstance(value, list | type(None)))
               | st.lists(amqp_scalars, min_size=0, max_size=4).filter(lambda items: len(items) != 2)
               | st.tuples(negative, st.none()).map(list)
               | st.tuples(st.none(), non_count.filter(lambda value: value is not None and not isinstance(
                   value, float | Decimal))).map(list)),
    set_header("ignore_result", amqp_values.filter(lambda value: not isinstance(value, bool | type(None)))),
    set_header("stamped_headers", amqp_values.map(arrived).filter(lambda value: value is not None and not (
        isinstance(value, list) and all(isinstance(item, str) for item in value)))),
    set_header("stamps", amqp_values.filter(lambda value: value is not None and not isinstance(value, dict))),
    # Names the worker keeps for itself; a name that is not UTF-8 (py-amqp hands it over as bytes).
    st.builds(lambda name, value: lambda raw: replace(raw, headers={**raw.headers, name: value}),
              st.sampled_from(RESERVED) | names.map(lambda name: f"_{name[:20]}"), amqp_values),
    st.builds(lambda name, value: lambda raw: replace(raw, headers={**raw.headers, name: value}),
              st.binary(min_size=1, max_size=20).filter(not_utf8), amqp_values),
    # Content type and encoding other than JSON in UTF-8.
    set_property("content_type", st.none() | text.filter(lambda value: value != "application/json")
                 | st.sampled_from(["application/data", "application/text", "application/x-python-serialize",
                                    "application/x-yaml", "application/x-msgpack", "text/plain"])),
    set_property("content_encoding", text.filter(lambda value: value != "" and not is_utf8_name(value))
                 | st.sampled_from(["binary", "latin-1", "utf-16", "ascii", "gzip"])),
    # What py-amqp cannot decode: text properties that are not UTF-8, header timestamps past year 9999.
    *[set_property(name, st.binary(min_size=1, max_size=20).filter(not_utf8), decodable=False)
      for name in ("content_type", "content_encoding", "correlation_id", "reply_to", "type", "app_id")],
    st.builds(lambda name, seconds: lambda raw: replace(
        raw, headers={**raw.headers, name: BeyondYear9999(seconds)}, decodable=False),
              noise_names, st.integers(253402300800, 2**64 - 1)),
]
#: One kind of mutation drawn evenly, then its value.
mutations = st.sampled_from(MUTATIONS).flatmap(lambda kind: kind)


@st.composite
def malformed_messages(draw: st.DrawFn) -> Raw:
    raw = draw(valid_messages())
    for mutate in draw(st.lists(mutations, min_size=1, max_size=3)):
        raw = mutate(raw)
    return raw


@settings(max_examples=150, deadline=None, database=None, print_blob=True, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(raw=malformed_messages())
def test_fuzzed_malformed_messages_are_dead_lettered(target: Target, raw: Raw) -> None:
    line = target.round_trip(raw)
    assert REJECTED in line


def test_the_worker_is_healthy_and_runs_add_after_the_fuzzer(target: Target) -> None:
    test_the_worker_still_runs_add_after_the_corpus(target)


def test_nothing_is_left_unacknowledged(target: Target, broker_url: str) -> None:
    """Stopped, the worker returns whatever it still held: the work queue must then be empty."""
    worker = target.serving()
    assert target.processes.stop(worker) == 0
    assert target.depth(target.queue) == 0
    assert target.depth(dead_letter_queue_name(target.queue)) == 0
