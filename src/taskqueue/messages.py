"""What a task message must look like before the worker hands it to Celery: Celery's protocol 2, checked.

Anyone who can publish to the work queue can send anything. Stock Celery trusts the shape of what it
receives: a known task name with a body that is not the ``[args, kwargs, embed]`` triple, or without an
``id`` header, raises inside the consumer, which the worker treats as unrecoverable (it exits, the message
goes back to the queue, and the next worker exits too). :func:`message_problem` says what is wrong with a
message, or ``None``; the consumer (``taskqueue.consumer``) rejects every message with a problem to the
dead-letter queue instead of passing it on.

The rules are protocol 2's (``celery.app.amqp.AMQP.as_task_v2``, what every Celery >= 4 client sends):

- content type JSON (the only one the worker accepts), content encoding UTF-8 or none;
- headers: ``task`` and ``id`` non-empty strings; each optional header Celery reads of its documented type
  (``timelimit`` a pair of numbers or nulls, ``retries`` a count, ``eta``/``expires`` ISO 8601, ...); other
  headers are plain data, except names the worker itself uses for a task's request (``chord``,
  ``callbacks``, ``delivery_info``, ...), which a header would overwrite;
- body: ``[args (list), kwargs (object), embed (object or null)]``, embed holding only ``callbacks``,
  ``errbacks``, ``chain`` (lists of signatures) and ``chord`` (a signature), a signature being an object
  with a ``task`` name.

Messages of protocol 1 (no ``task`` header, the task in the body) are refused: no client of this project
sends them, and they take a separate, looser path through Celery.

Reasons name the field and the type that is wrong, never a value: values are the sender's data.
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from celery.utils.time import maybe_iso8601
from kombu.exceptions import DecodeError

#: Key the property guard (``taskqueue.consumer``) puts in a message's properties when py-amqp could not
#: decode them; the value says why.
UNDECODABLE_PROPERTIES = "x-taskqueue-undecodable-properties"

#: Names a header must not have: Celery builds a task's request from its headers, then sets these itself
#: (from the body's embed, the delivery, the worker) or reads them as internal state; a header of that
#: name would overwrite or confuse them. (celery.app.task.Context's attributes that are no protocol header.)
RESERVED_HEADERS = frozenset({
    "args", "kwargs", "callbacks", "errbacks", "chain", "chord", "called_directly", "is_eager",
    "delivery_info", "hostname", "properties", "reply_to", "correlation_id", "headers", "logfile",
    "loglevel", "taskset", "time_limit", "soft_time_limit", "utc",
})

#: The embed keys of protocol 2.
EMBED_KEYS = frozenset({"callbacks", "errbacks", "chain", "chord"})

#: Types a header value may have (what an AMQP table decodes to), nested in lists and tables.
PLAIN_TYPES = (str, bytes, bytearray, bool, int, float, Decimal, datetime, type(None))

#: Years an ``eta`` or ``expires`` may name: beyond them, converting it to a timestamp overflows.
DATE_YEARS = range(1971, 9999)

#: Deepest nesting of lists and tables accepted in a header value.
MAX_DEPTH = 32


def describe_error(exc: BaseException) -> str:
    """The class of a decoding error, with its text only where that cannot hold message content (a JSON
    syntax error says where, a UTF-8 error which byte): other decoders' messages quote what they read."""
    cause = exc.args[0] if isinstance(exc, DecodeError) and exc.args else exc
    if isinstance(cause, BaseException) and cause is not exc:
        name = f"{exc.__class__.__name__} ({cause.__class__.__name__})"
    else:
        cause, name = exc, exc.__class__.__name__
    if isinstance(cause, json.JSONDecodeError | UnicodeDecodeError):
        return f"{name}: {cause}"
    return name


def type_name(value: object) -> str:
    return type(value).__name__


def _text(value: object) -> str | None:
    return None if isinstance(value, str) and value else f"must be a non-empty string, got {type_name(value)}"


def _optional_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return None
    return f"must be a string or null, got {type_name(value)}"


def _count(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return None
    return f"must be a non-negative integer, got {type_name(value)}"


def _optional_count(value: object) -> str | None:
    return None if value is None else _count(value)


def _optional_bool(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    return f"must be a boolean or null, got {type_name(value)}"


def _date(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return f"must be an ISO 8601 date string or null, got {type_name(value)}"
    try:
        parsed = maybe_iso8601(value)
    except (ValueError, OverflowError, TypeError):
        return "must be an ISO 8601 date string, got one that does not parse"
    if parsed is not None and parsed.year not in DATE_YEARS:
        return f"must be a date from {DATE_YEARS.start} to {DATE_YEARS.stop - 1}"
    return None


def _number_or_null(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0


def _timelimit(value: object) -> str | None:
    # [hard, soft] seconds, each a non-negative finite number or null (null: the worker's limit).
    if value is None:
        return None
    if isinstance(value, list | tuple) and len(value) == 2 and all(map(_number_or_null, value)):
        return None
    return "must be [hard, soft]: two non-negative numbers or nulls"


def _text_list(value: object) -> str | None:
    if value is None or (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        return None
    return "must be a list of strings or null"


def _table(value: object) -> str | None:
    if value is None or (isinstance(value, dict) and all(isinstance(key, str) for key in value)):
        return None
    return f"must be a table with string keys or null, got {type_name(value)}"


#: The headers of protocol 2 and the check of each (``task`` and ``id`` are required).
HEADER_CHECKS: Mapping[str, Callable[[object], str | None]] = {
    "task": _text,
    "id": _text,
    "lang": _optional_text,
    "shadow": _optional_text,
    "eta": _date,
    "expires": _date,
    "group": _optional_text,
    "group_index": _optional_count,
    "retries": _count,
    "timelimit": _timelimit,
    "root_id": _optional_text,
    "parent_id": _optional_text,
    "argsrepr": _optional_text,
    "kwargsrepr": _optional_text,
    "origin": _optional_text,
    "ignore_result": _optional_bool,
    "replaced_task_nesting": _count,
    "stamped_headers": _text_list,
    "stamps": _table,
    "meth": _optional_text,
    "compression": _optional_text,
}


def _plain(value: object, depth: int = 0) -> bool:
    """Whether ``value`` is plain data (what an AMQP table holds), at most MAX_DEPTH levels deep."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, list | tuple):
        return all(_plain(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str | bytes) and _plain(item, depth + 1) for key, item in value.items())
    return isinstance(value, PLAIN_TYPES)


def header_problem(headers: object) -> str | None:
    """What is wrong with the headers of a protocol 2 task message, or None."""
    if not isinstance(headers, dict):
        return f"headers must be a table, got {type_name(headers)}"
    for name, value in headers.items():
        if not isinstance(name, str):
            return "header names must be text"
        if name.startswith("_") or name in RESERVED_HEADERS:
            return f"header {name[:60]!r} is reserved for the worker's own use"
        check = HEADER_CHECKS.get(name)
        problem = check(value) if check is not None else (None if _plain(value) else "is not plain data")
        if problem:
            return f"header {name[:60]!r} {problem}"
    for name in ("task", "id"):
        if name not in headers:
            return f"no {name!r} header"
    stamped = headers.get("stamped_headers") or []
    stamps = headers.get("stamps") or {}
    if any(name not in stamps for name in stamped):
        return "header 'stamped_headers' names a stamp missing from header 'stamps'"
    return None


def _signature(value: object) -> bool:
    """Whether ``value`` looks like a serialized signature: an object with a task name (Celery checks the
    rest when it sends it, after the task ran)."""
    return isinstance(value, dict) and isinstance(value.get("task"), str) and bool(value["task"])


def body_problem(body: object) -> str | None:
    """What is wrong with a decoded protocol 2 body, or None."""
    if not isinstance(body, list | tuple):
        return f"body must be [args, kwargs, embed], got {type_name(body)}"
    if len(body) != 3:
        return f"body must be [args, kwargs, embed], got a list of {len(body)} items"
    args, kwargs, embed = body
    if not isinstance(args, list | tuple):
        return f"args must be a list, got {type_name(args)}"
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        return f"kwargs must be an object, got {type_name(kwargs)}"
    if embed is None:
        return None
    if not isinstance(embed, dict):
        return f"embed must be an object or null, got {type_name(embed)}"
    unknown = [key for key in embed if key not in EMBED_KEYS]
    if unknown:
        return f"embed has keys other than {', '.join(sorted(EMBED_KEYS))}"
    for key in ("callbacks", "errbacks", "chain"):
        value = embed.get(key)
        if value is not None and not (isinstance(value, list) and all(map(_signature, value))):
            return f"embed {key!r} must be a list of signatures or null"
    chord = embed.get("chord")
    if chord is not None and not _signature(chord):
        return "embed 'chord' must be a signature or null"
    return None


def content_problem(content_type: object, content_encoding: object, accept: Collection[str]) -> str | None:
    """What is wrong with a message's content type and encoding for a worker accepting ``accept``."""
    if content_type not in accept:
        shown = f"{content_type!r:.80}" if isinstance(content_type, str) else type_name(content_type)
        return f"content type {shown} is not accepted (only {', '.join(sorted(accept))})"
    if content_encoding is None:
        return None
    try:
        name = codecs.lookup(content_encoding).name if isinstance(content_encoding, str) else None
    except LookupError:
        name = None
    if name != "utf-8":
        return "content encoding must be utf-8"
    return None


def message_problem(message: Any, accept: Collection[str]) -> tuple[str, str] | None:
    """(kind, reason) of what makes ``message`` (a kombu message) not a task message this worker can take,
    or None. Kind is ``undecodable message`` or ``malformed task message``. Decodes the body (kombu keeps
    the result: Celery does not decode it again)."""
    properties = message.properties if isinstance(message.properties, dict) else {}
    if UNDECODABLE_PROPERTIES in properties:
        return "undecodable message", f"AMQP properties: {properties[UNDECODABLE_PROPERTIES]}"
    problem = content_problem(message.content_type, message.content_encoding, accept)
    if problem:
        return "undecodable message", problem
    try:
        body = message.decode()
    except Exception as exc:  # kombu wraps decoder errors in DecodeError; anything else is as undecodable
        return "undecodable message", describe_error(exc)
    headers = message.headers
    if isinstance(headers, dict) and "task" not in headers:
        return "malformed task message", "no 'task' header (not a task message of Celery's protocol 2)"
    problem = header_problem(headers) or body_problem(body)
    if problem:
        return "malformed task message", problem
    return None
