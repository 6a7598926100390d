"""The Celery app's production defaults, built without any reachable broker."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
from kombu.connection import Connection

import taskqueue.app as app_module
from taskqueue.app import (
    ADD_TASK,
    DeadLetteredQueue,
    create_app,
    dead_letter_queue_name,
    queue_arguments,
    task_queue,
)
from taskqueue.config import ConfigError, Settings, load_settings
from taskqueue.worker import worker_options
from tests.support.processes import VENV_BIN, Processes
from tests.support.tasks import REPO_ROOT, SLEEP_TASK, STUBBORN_SLEEP_TASK, UNSTOPPABLE_SLEEP_TASK

UNREACHABLE = "amqp://user:pw@unreachable.invalid:5672//"


@pytest.fixture(autouse=True)
def _no_runtime_variables(clean_env: pytest.MonkeyPatch) -> None:
    """Settings() below must not pick anything up from the developer's shell."""


def test_app_builds_without_a_broker() -> None:
    app = create_app(Settings(broker_url=UNREACHABLE, queue_name="work"))  # type: ignore[arg-type]
    conf = app.conf
    assert ADD_TASK in app.tasks
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.result_serializer == "json" and conf.result_accept_content == ["json"]
    assert conf.broker_connection_retry_on_startup
    assert conf.worker_send_task_events and conf.task_send_sent_event
    assert (conf.task_time_limit, conf.task_soft_time_limit) == (300, 240)
    assert conf.worker_prefetch_multiplier == 16
    assert conf.task_default_queue == "work"
    assert conf.task_routes[ADD_TASK] == {"queue": "work"}
    assert conf.result_backend == "rpc://"
    assert conf.result_expires == 3600
    assert conf.worker_cancel_long_running_tasks_on_connection_loss
    assert conf.worker_detect_quorum_queues


def test_quorum_queue_by_default_classic_on_request() -> None:
    quorum = task_queue(Settings(queue_name="q"))
    assert quorum.queue_arguments is not None
    assert quorum.durable and quorum.queue_arguments["x-queue-type"] == "quorum"
    assert quorum.exchange.type == "topic"  # native delayed delivery binds topic exchanges only
    classic = task_queue(Settings(queue_name="q", queue_type="classic"))
    assert classic.queue_arguments is not None
    assert classic.durable and "x-queue-type" not in classic.queue_arguments


def test_quorum_queue_dead_letters_to_its_own_quorum_queue() -> None:
    queue = task_queue(Settings(queue_name="work", queue_delivery_limit=3))
    assert queue.queue_arguments == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",  # the default exchange: routes by queue name
        "x-dead-letter-routing-key": "work.dead-letter",
        "x-delivery-limit": 3,
    }
    dead_letter = queue.dead_letter_queue
    assert dead_letter is not None
    assert dead_letter.name == dead_letter_queue_name("work") == "work.dead-letter"
    assert dead_letter.durable and not dead_letter.auto_delete
    assert dead_letter.queue_arguments == {"x-queue-type": "quorum"}  # type: ignore[attr-defined]
    assert not dead_letter.exchange.name  # no binding: reached through the default exchange only
    assert Settings().queue_delivery_limit == 10


def test_classic_queue_dead_letters_without_a_delivery_limit() -> None:
    # Classic queues have no delivery count: x-delivery-limit would be refused or ignored.
    queue = task_queue(Settings(queue_name="work", queue_type="classic", queue_delivery_limit=3))
    assert queue.queue_arguments == {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "work.dead-letter",
    }
    assert queue.dead_letter_queue is not None
    assert queue.dead_letter_queue.durable and not queue.dead_letter_queue.queue_arguments  # type: ignore[attr-defined]
    assert queue_arguments(Settings(queue_type="classic"))[1] == {}  # a classic dead-letter queue too


def test_copies_of_the_queue_keep_the_dead_letter_queue() -> None:
    # kombu binds a copy of the queue to each channel: the copy must still declare the dead-letter queue.
    queue = task_queue(Settings(queue_name="work"))
    for clone in (copy.copy(queue), queue.bind(Connection("memory://"))):  # type: ignore[no-untyped-call]
        assert isinstance(clone, DeadLetteredQueue)
        assert clone.dead_letter_queue is not None
        assert clone.dead_letter_queue.name == "work.dead-letter"
        assert clone.queue_arguments == queue.queue_arguments


def test_every_client_declares_the_same_queue() -> None:
    # Worker (task_queues), producer (routes) and clients all use task_queue(settings): one set of args.
    settings = Settings(broker_url=UNREACHABLE, queue_name="work")  # type: ignore[arg-type]
    app = create_app(settings)
    declared = app.amqp.queues["work"]
    assert declared.queue_arguments == task_queue(settings).queue_arguments
    assert app.amqp.router.route({}, ADD_TASK)["queue"].queue_arguments == declared.queue_arguments
    assert app.conf.worker_consumer == "taskqueue.consumer:Consumer"


def test_queue_name_leaves_room_for_the_dead_letter_suffix(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("QUEUE_NAME", "q" * 243)
    assert len(dead_letter_queue_name(load_settings().queue_name)) == 255  # AMQP's limit
    clean_env.setenv("QUEUE_NAME", "q" * 244)
    with pytest.raises(ConfigError, match="QUEUE_NAME: String should have at most 243 characters"):
        load_settings()


def test_worker_options_skip_mingle_and_gossip() -> None:
    options = worker_options(Settings(worker_pool="prefork", worker_concurrency=3, log_level="warning"))
    assert options["without_mingle"] and options["without_gossip"]
    assert not options["without_heartbeat"]  # Flower needs worker heartbeats
    assert (options["concurrency"], options["pool"], options["loglevel"]) == (3, "prefork", "WARNING")
    enabled = worker_options(Settings(worker_mingle=True, worker_gossip=True))
    assert not enabled["without_mingle"] and not enabled["without_gossip"]


def test_the_default_pool_runs_tasks_inline_one_at_a_time() -> None:
    options = worker_options(Settings())
    assert (options["pool"], options["concurrency"]) == ("taskqueue.pool:InlinePool", 1)


def test_module_app_is_built_lazily_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    # Importing the module reads no configuration; ``celery -A taskqueue.app`` gets ``app`` on access.
    code = "import taskqueue.app as m; print(m._default_app is None)"
    env = {"PATH": "/usr/bin:/bin", "WORKER_CONCURRENCY": "not-a-number"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    clean_env.setenv("QUEUE_NAME", "lazy")
    app_module._default_app = None
    try:
        assert app_module.app.conf.task_default_queue == "lazy"
    finally:
        app_module._default_app = None
    with pytest.raises(AttributeError):
        _ = app_module.nothing


def test_broker_resource_alarms_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    # py-amqp hands these to the connection: RabbitMQ's connection.blocked / unblocked reach the log.
    options = create_app(Settings(broker_url=UNREACHABLE)).conf.broker_transport_options  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="taskqueue.broker"):
        options["on_blocked"]("low on disk")
        options["on_unblocked"]()
    assert [record.getMessage() for record in caplog.records] == [
        "RabbitMQ blocked publishing on this connection: low on disk (a broker resource alarm; publishes "
        "wait until it clears: free disk or memory on the broker)",
        "RabbitMQ unblocked this connection: publishing resumes",
    ]


def fresh_interpreter(code: str, **variables: str) -> str:
    """Run ``code`` in a new Python with only ``variables`` (and PATH) set; return its stdout."""
    env = {"PATH": "/usr/bin:/bin", **variables}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


#: The tasks an app built from the environment registers, Celery's own built-ins left out.
LIST_TASKS = (
    "from taskqueue.app import create_app, import_task_modules; from taskqueue.config import load_settings; "
    "s = load_settings(); import_task_modules(s); "
    "print(sorted(n for n in create_app(s).tasks if not n.startswith('celery.')))"
)


def test_a_production_app_registers_only_add() -> None:
    # Issue 7 item 8: a task that only sleeps let anyone who can publish tie up every worker.
    assert fresh_interpreter(LIST_TASKS) == "['taskqueue.tasks.add']"


def test_worker_task_modules_add_their_tasks() -> None:
    listed = fresh_interpreter(
        LIST_TASKS, WORKER_TASK_MODULES="tests.support.tasks", PYTHONPATH=str(REPO_ROOT)
    )
    expected = ["taskqueue.tasks.add", SLEEP_TASK, STUBBORN_SLEEP_TASK, UNSTOPPABLE_SLEEP_TASK]
    assert listed == str(expected)


def test_a_task_module_that_cannot_be_imported_stops_the_worker_naming_the_variable(
    processes: Processes,
) -> None:
    env = {**os.environ, "WORKER_TASK_MODULES": "no_such_tasks", "BROKER_URL": UNREACHABLE}
    worker = processes.start([str(VENV_BIN / "taskqueue"), "worker"], env, "worker")
    assert worker.wait(timeout=60) == 2  # before any connection attempt: the broker is unreachable
    assert processes.output(worker) == (
        "taskqueue: invalid configuration: WORKER_TASK_MODULES: cannot import 'no_such_tasks': "
        "ModuleNotFoundError: No module named 'no_such_tasks'\n"
    )


def test_the_task_alone_uses_the_configured_app_in_a_fresh_interpreter() -> None:
    # Issue 7 item 7: ``from taskqueue.tasks import add; add.delay(2, 3)`` with nothing else imported, as
    # the original's ``celery_conf.add`` was used, must send with the app of the environment, not Celery's
    # unconfigured fallback app (another broker, a direct exchange "celery": PRECONDITION_FAILED).
    code = (
        "from taskqueue.tasks import add; app = add.app; "
        "print(app.main, app.conf.broker_url, app.conf.task_default_queue, "
        "app.amqp.router.route({}, add.name)['queue'].exchange.type, "
        "app is __import__('celery').current_app._get_current_object())"
    )
    assert fresh_interpreter(code, BROKER_URL=UNREACHABLE, QUEUE_NAME="first") == (
        f"taskqueue {UNREACHABLE} first topic True"
    )


def test_the_task_keeps_the_current_app_create_app_made() -> None:
    # A worker or a client that built its app with create_app keeps it: the environment is not read.
    code = (
        "from taskqueue.app import create_app; from taskqueue.config import Settings; "
        "app = create_app(Settings(queue_name='mine')); "
        "from taskqueue.tasks import add; import taskqueue.app as m; "
        "print(add.app is app, add.app.conf.task_default_queue, m._default_app is None)"
    )
    assert fresh_interpreter(code, QUEUE_NAME="theirs") == "True mine True"
