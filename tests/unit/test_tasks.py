"""``add`` argument validation, run in-process (the task function and Task.apply: no broker)."""

from __future__ import annotations

import math

import pytest

from taskqueue.app import create_app
from taskqueue.config import Settings
from taskqueue.tasks import InvalidArgumentError, add, check_number
from tests.support.tasks import SLEEP_TASK, sleep


@pytest.fixture(scope="module", autouse=True)
def app() -> None:
    # An app that could never connect: building it and applying tasks must not touch a broker.
    create_app(Settings(broker_url="amqp://nobody:nothing@127.0.0.1:1//"))  # type: ignore[arg-type]


@pytest.mark.parametrize(("x", "y", "total"), [(2, 3, 5), (-1, 1, 0), (1.5, 2, 3.5), (10**30, 1, 10**30 + 1)])
def test_add_numbers(x: float, y: float, total: float) -> None:
    assert add(x, y) == total
    assert add.apply(args=(x, y)).get() == total


def test_registered_name() -> None:
    assert add.name == "taskqueue.tasks.add"
    assert sleep.name == SLEEP_TASK == "tests.support.tasks.sleep"


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ("a", 1, "argument 'x' must be a number (int or float), got str 'a'"),
        (1, "2", "argument 'y' must be a number (int or float), got str '2'"),
        (None, 1, "argument 'x' must be a number (int or float), got NoneType None"),
        (True, 1, "argument 'x' must be a number (int or float), got bool True"),
        (1, [2], "argument 'y' must be a number (int or float), got list [2]"),
        (1, {"a": 1}, "argument 'y' must be a number (int or float), got dict {'a': 1}"),
        (math.nan, 1, "argument 'x' must be a finite number, got nan"),
        (1, math.inf, "argument 'y' must be a finite number, got inf"),
        (-math.inf, 1, "argument 'x' must be a finite number, got -inf"),
    ],
)
def test_bad_arguments_fail_with_a_clear_error(x: object, y: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        add(x, y)
    assert str(caught.value) == message
    # Through Celery's execution path: a FAILURE whose result is the error, not a retry.
    result = add.apply(args=(x, y))
    assert result.status == "FAILURE"
    assert isinstance(result.result, InvalidArgumentError)
    assert str(result.result) == message
    assert result.traceback is not None


def test_error_is_a_type_error() -> None:
    # Callers catching TypeError (the natural error of 1 + "a") still catch it.
    assert issubclass(InvalidArgumentError, TypeError)


def test_long_values_are_truncated_in_the_message() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        check_number("x", "z" * 1000)
    assert len(str(caught.value)) < 200


def test_bad_argument_is_not_retried() -> None:
    assert add.apply(args=("a", 1)).status == "FAILURE"
    assert not getattr(add, "autoretry_for", ())
    assert InvalidArgumentError in add.throws  # "expected": logged in one line, no traceback wall


@pytest.mark.parametrize("seconds", [-1, 3601, "1", None])
def test_sleep_validates(seconds: object) -> None:
    with pytest.raises(InvalidArgumentError):
        sleep(seconds)


def test_sleep_returns_seconds() -> None:
    assert sleep(0) == 0
