"""Every environment variable ``taskqueue`` reads, declared once: its name, the chart values key that sets
it, the CLI option that wins over it, its default, its type, the components that read it and one line of
documentation.

Everything else is derived from these declarations or checked against them:

- the pydantic model ``taskqueue._settings.Settings`` takes each field's default and description from here
  (``tests/unit/test_settings_registry.py`` checks fields and types match);
- the health probes' stdlib loader ``taskqueue.config.load_probe_settings`` reads the ``probe`` settings
  with the parsers below, which give pydantic's messages;
- the README's configuration table (``python -m taskqueue.settings_registry --markdown``; a unit test fails
  when the README differs);
- the chart's container env (a unit test renders the chart and compares).

Standard library only and cheap to import: the probes import it every few seconds in every pod.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

#: What a setting holds; the Settings model's type must match (checked by a unit test).
Kind = Literal[
    "str", "int>0", "float>0", "port", "bool", "enum", "path", "url", "basic-auth", "url-prefix",
    "module-list", "schedule", "pattern",
]

#: The chart's component labels of the containers that run ``taskqueue`` (``test``: the chart's test pod).
WORKER, PRODUCER, BEAT, FLOWER, TEST = "worker", "producer", "beat", "flower", "test"
COMPONENTS = (WORKER, PRODUCER, BEAT, FLOWER, TEST)
#: Every container gets the broker and Celery settings (one queue, declared alike by all).
ALL = frozenset(COMPONENTS)

#: A Python import path (``pkg.module``): what WORKER_TASK_MODULES lists and a schedule entry's task names.
MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ConfigError(ValueError):
    """A configuration problem, with a message that names the variable and never a secret."""


@dataclass(frozen=True)
class Setting:
    """One environment variable. ``values`` maps each component whose container the chart sets it in to
    the values key behind it (empty: the chart does not expose it; a fixed value the chart writes itself
    is ``chart_fixed``)."""

    env: str
    kind: Kind
    default: object
    doc: str
    components: frozenset[str]
    values: Mapping[str, str] = field(default_factory=dict)
    cli: str | None = None
    secret: bool = False
    #: Read by the health probes' stdlib loader too (``taskqueue health ...``).
    probe: bool = False
    #: For "enum": the allowed values.
    choices: tuple[str, ...] = ()
    #: None is allowed (unset means "none", not the default).
    optional: bool = False
    #: The chart sets it to a fixed value in these components (a path inside the container, an address).
    chart_fixed: frozenset[str] = frozenset()
    #: How the README shows the default, when the value's own text is not the clearest.
    default_text: str | None = None
    #: Former names: still read for one release, with a warning naming the new one.
    former: tuple[str, ...] = ()

    @property
    def field(self) -> str:
        """The Settings field (and ProbeSettings attribute) holding it."""
        return self.env.lower()

    @property
    def values_key(self) -> str | None:
        """The values key(s) behind it, one per distinct key ("a / b"), or None."""
        keys = list(dict.fromkeys(self.values[c] for c in COMPONENTS if c in self.values))
        return " / ".join(keys) if keys else None

    def shown_default(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, float) and self.default.is_integer():
            return f"`{int(self.default)}`"
        if self.default == "" or self.default == ():
            return "empty"
        return f"`{self.default}`"


def _every(key: str, components: Iterable[str] = ALL) -> dict[str, str]:
    return {component: key for component in components}


_HEALTH = (WORKER, PRODUCER, BEAT)

SETTINGS: tuple[Setting, ...] = (
    # Broker. BROKER_URL wins over the parts below.
    Setting("BROKER_URL", "url", None, "full broker URL; wins over the parts below", ALL,
            _every("externalBroker.urlKey"), secret=True, optional=True),
    Setting("RABBITMQ_SERVICE_SERVICE_HOST", "str", None,
            "broker host (the original's Kubernetes service variable)", ALL,
            _every("externalBroker.host"), optional=True, default_text="`localhost`"),
    Setting("RABBITMQ_SERVICE_SERVICE_PORT", "port", 5672, "broker port", ALL, _every("externalBroker.port")),
    Setting("RABBITMQ_USERNAME", "str", "guest", "broker user", ALL, _every("externalBroker.username")),
    Setting("RABBITMQ_PASSWORD", "str", None, "broker password; required when the host is set", ALL,
            _every("externalBroker.passwordKey"), secret=True, optional=True),
    Setting("RABBITMQ_VHOST", "str", "/", "broker vhost", ALL, _every("externalBroker.vhost")),
    # Celery.
    Setting("RESULT_BACKEND", "str", "rpc://", "Celery result backend", ALL, _every("celery.resultBackend")),
    Setting("QUEUE_NAME", "pattern", "celery",
            "queue `add` is routed to and workers consume (at most 243 characters); messages nobody can "
            "run (undecodable, malformed, unknown task, poison) go to `<QUEUE_NAME>.dead-letter`",
            ALL, _every("celery.queueName")),
    Setting("QUEUE_TYPE", "enum", "quorum",
            "`quorum` or `classic`, for the queue and its dead-letter queue; every process must use the "
            "same queue settings (RabbitMQ refuses a redeclare with other arguments)",
            ALL, _every("celery.queueType"), choices=("quorum", "classic")),
    Setting("QUEUE_DELIVERY_LIMIT", "int>0", 10,
            "deliveries of one message before a quorum queue dead-letters it (a task that kills its "
            "worker each time); classic queues have no such limit", ALL, _every("celery.queueDeliveryLimit")),
    Setting("WORKER_POOL", "enum", "solo",
            "`solo`: each task runs in the worker process itself, one at a time, time limits kept (the "
            "fastest: scale with replicas); `prefork`: `WORKER_CONCURRENCY` pool processes (CPU-bound tasks "
            "on a pod of several cores)", frozenset({WORKER}), {WORKER: "worker.pool"},
            choices=("solo", "prefork")),
    Setting("WORKER_CONCURRENCY", "int>0", 1, "pool processes of the `prefork` pool (1 with `solo`)",
            frozenset({WORKER}), {WORKER: "worker.concurrency"}),
    Setting("WORKER_PREFETCH_MULTIPLIER", "int>0", 16,
            "messages reserved per worker process (1 for a worker group of long tasks)",
            frozenset({WORKER}), {WORKER: "worker.prefetchMultiplier"}),
    Setting("TASK_TIME_LIMIT", "int>0", 300, "hard task time limit, seconds (above the soft one)",
            frozenset({WORKER}), {WORKER: "worker.taskTimeLimit"}),
    Setting("TASK_SOFT_TIME_LIMIT", "int>0", 240, "soft task time limit, seconds (below the hard one)",
            frozenset({WORKER}), {WORKER: "worker.taskSoftTimeLimit"}),
    Setting("BROKER_CONNECTION_TIMEOUT", "float>0", 4.0, "seconds to wait for one broker connection attempt",
            ALL, _every("celery.brokerConnectionTimeout")),
    Setting("WORKER_BROKER_HEARTBEAT", "int>0", 30,
            "seconds between AMQP heartbeats on the worker's broker connection; two missed drop it (a "
            "silently dead broker found in a minute)", frozenset({WORKER}),
            {WORKER: "worker.brokerHeartbeat"}),
    Setting("WORKER_MINGLE", "bool", False,
            "Celery's start-up state sync with peers (off: a faster start, nothing here needs it)",
            frozenset({WORKER}), {WORKER: "worker.mingle"}),
    Setting("WORKER_GOSSIP", "bool", False, "Celery's peer gossip (off: nothing here needs it)",
            frozenset({WORKER}), {WORKER: "worker.gossip"}),
    Setting("WORKER_REMOTE_CONTROL", "bool", True,
            "answer Flower's and `celery inspect` broadcasts (the health probe never needs it)",
            frozenset({WORKER}), {WORKER: "worker.remoteControl"}),
    Setting("LOG_LEVEL", "pattern", "info", "`debug` … `critical`", ALL, _every("celery.logLevel")),
    Setting("WORKER_LOG_TASKS", "bool", False,
            "Celery's two info lines per task (received, succeeded); failures, retries and rejections log "
            "regardless", frozenset({WORKER}), {WORKER: "worker.logTasks"}),
    Setting("WORKER_TASK_MODULES", "module-list", (),
            "comma-separated Python modules of extra tasks the worker imports at start "
            "(`pkg.tasks,other.tasks`, importable from the worker's path); one that cannot be imported "
            "stops the worker with an error naming it. Unset, a worker runs only `add` (the tests' sleep "
            "task lives in `tests/support/tasks.py`)", frozenset({WORKER}), {WORKER: "worker.taskModules"},
            default_text="unset"),
    # Producer.
    Setting("PRODUCER_INTERVAL", "float>0", 5.0, "seconds between two `add` dispatches",
            frozenset({PRODUCER}), {PRODUCER: "producer.interval"}, cli="taskqueue produce --interval"),
    Setting("PRODUCER_RATE", "float>0", None,
            "tasks per second instead (`PRODUCER_RATE` R means `PRODUCER_INTERVAL` 1/R; setting both is "
            "refused)", frozenset({PRODUCER}), {PRODUCER: "producer.rate"}, cli="taskqueue produce --rate",
            optional=True),
    Setting("PRODUCER_COUNT", "int>0", None, "tasks to send, then exit (unset: until stopped)",
            frozenset({PRODUCER}), {PRODUCER: "producer.count"}, cli="taskqueue produce --count",
            optional=True),
    Setting("PRODUCER_IDLE_AFTER_COUNT", "bool", False,
            "once `PRODUCER_COUNT` tasks are sent, stay up idle until stopped (what the chart sets: a "
            "Deployment would restart an exited producer into another batch)",
            frozenset({PRODUCER}), {PRODUCER: "producer.count"}, cli="taskqueue produce --idle-after-count"),
    # Health.
    Setting("WORKER_HEALTH_FILE", "path", Path("/tmp/taskqueue-worker.heartbeat"),
            "the worker's heartbeat file", frozenset({WORKER}), probe=True, former=("HEALTH_FILE",)),
    Setting("HEALTH_INTERVAL", "float>0", 5.0,
            "seconds between two heartbeats (worker, producer; beat's loop never sleeps longer)",
            frozenset(_HEALTH), {c: f"{c}.health.interval" for c in _HEALTH}),
    Setting("HEALTH_MAX_AGE", "float>0", 30.0, "age of a heartbeat at which the probe fails",
            frozenset(_HEALTH), {c: f"{c}.health.maxAge" for c in _HEALTH}, probe=True),
    Setting("PRODUCER_HEALTH_FILE", "path", Path("/tmp/taskqueue-producer.heartbeat"),
            "the producer's heartbeat file (its own, so a worker and a producer can share an environment)",
            frozenset({PRODUCER}), probe=True),
    Setting("BEAT_HEALTH_FILE", "path", Path("/tmp/taskqueue-beat.heartbeat"), "celery beat's heartbeat file",
            frozenset({BEAT}), probe=True),
    # celery beat.
    Setting("BEAT_SCHEDULE", "schedule",
            '[{"name": "add-every-5s", "task": "taskqueue.tasks.add", "every": 5, "args": [2, 3]}]',
            "celery beat's schedule, a JSON list of entries: `name`, `task`, `every` (seconds) or "
            "`crontab` (5 fields, UTC), optional `args`, `kwargs`, `queue`, `expires` (seconds); a bad "
            "entry stops beat with its position, name and field (`src/taskqueue/schedule.py`)",
            frozenset({BEAT}), {BEAT: "beat.schedule"}, default_text="`add(2, 3)` every 5 s"),
    Setting("BEAT_SCHEDULE_FILE", "path", Path("/tmp/taskqueue-beat-schedule"),
            "beat's schedule state (each entry's last run; Celery's shelve file)",
            frozenset({BEAT}), chart_fixed=frozenset({BEAT})),
    # Flower.
    Setting("FLOWER_PORT", "port", 5555, "Flower's port", frozenset({FLOWER}),
            {FLOWER: "flower.port"}, cli="taskqueue flower --port", probe=True),
    Setting("FLOWER_ADDRESS", "str", "127.0.0.1", "Flower's bind address", frozenset({FLOWER}),
            chart_fixed=frozenset({FLOWER})),
    Setting("FLOWER_BASIC_AUTH", "basic-auth", None,
            "`user:password` (comma-separate several); required off loopback", frozenset({FLOWER}),
            {FLOWER: "flower.auth.enabled"}, secret=True, probe=True, optional=True),
    Setting("FLOWER_URL_PREFIX", "url-prefix", "", "sub-path when served behind an ingress",
            frozenset({FLOWER}), {FLOWER: "flower.ingress.path"}, probe=True),
    Setting("FLOWER_PERSISTENT", "bool", False, "keep Flower's state in a file", frozenset({FLOWER}),
            {FLOWER: "flower.persistence.enabled"}),
    Setting("FLOWER_DB", "path", Path("/tmp/flower.db"), "the file Flower keeps its state in",
            frozenset({FLOWER}), chart_fixed=frozenset({FLOWER})),
    Setting("FLOWER_MAX_TASKS", "int>0", 10000, "tasks Flower keeps in memory at most", frozenset({FLOWER}),
            {FLOWER: "flower.maxTasks"}),
    Setting("FLOWER_MAX_WORKERS", "int>0", 5000, "workers Flower keeps in memory at most",
            frozenset({FLOWER}), {FLOWER: "flower.maxWorkers"}),
    Setting("FLOWER_ALLOW_UNAUTHENTICATED", "bool", False, "allow Flower without auth off loopback",
            frozenset({FLOWER}), {FLOWER: "flower.auth.enabled"}),
    Setting("FLOWER_STATE_SAVE_INTERVAL", "int>0", 60000, "ms between two saves of the persistent state",
            frozenset({FLOWER}), {FLOWER: "flower.persistence.stateSaveInterval"}),
    Setting("FLOWER_PURGE_OFFLINE_WORKERS", "int>0", 3600,
            "seconds after which Flower forgets an offline worker", frozenset({FLOWER}),
            {FLOWER: "flower.purgeOfflineWorkers"}, optional=True),
    Setting("FLOWER_BROKER_API", "url", None,
            "RabbitMQ's management API (`http://host:15672/api/`) for Flower's Broker tab (queue depth, "
            "consumers); without user info Flower signs in with the broker's credentials; shown in logs "
            "with any password masked", frozenset({FLOWER}), {FLOWER: "flower.brokerApi"}, secret=True,
            optional=True),
)

#: The declarations by variable name.
BY_ENV: Mapping[str, Setting] = {setting.env: setting for setting in SETTINGS}

#: Environment variables whose values are secret: never echoed back in an error.
SECRET_VARIABLES = frozenset(setting.env for setting in SETTINGS if setting.secret)


# --- Former names ---------------------------------------------------------------------------------------

_warned: set[str] = set()


def renamed_values(environ: Mapping[str, str], settings: Iterable[Setting] | None = None) -> dict[str, str]:
    """``{new name: value}`` for each setting set only under a former name (names compared
    case-insensitively, like the loaders do); warns once per former name, naming the new one. The new
    name wins when both are set."""
    present = {key.upper(): value for key, value in environ.items()}
    found: dict[str, str] = {}
    for setting in SETTINGS if settings is None else settings:
        if setting.env in present:
            continue
        for old in setting.former:
            if old in present:
                found[setting.env] = present[old]
                if old not in _warned:
                    _warned.add(old)
                    warnings.warn(f"{old} is deprecated and will stop working in the next release: set "
                                  f"{setting.env} instead", FutureWarning, stacklevel=2)
                break
    return found


# --- Rules shared by Settings and ProbeSettings ---------------------------------------------------------


class Invalid(ValueError):
    """One variable's problem, worded like pydantic's (the message ``Settings`` gives for it)."""


_NOT_A_NUMBER = "Input should be a valid number, unable to parse string as a number"
_NOT_AN_INTEGER = "Input should be a valid integer, unable to parse string as an integer"


def parse_number(
    raw: str, *, integer: bool, gt: float | None = None, ge: float | None = None, le: float | None = None
) -> float:
    """A number from an environment string with pydantic's lax rules and messages: surrounding whitespace
    ignored, ASCII only, single underscores between digits dropped; an integer may have a zero fraction
    ("5555.0", not "5555." nor "5555.5")."""
    invalid = _NOT_AN_INTEGER if integer else _NOT_A_NUMBER
    text = raw.strip()
    if not text.isascii() or text.startswith("_") or text.endswith("_") or "__" in text:
        raise Invalid(invalid)
    text = text.replace("_", "")
    value: float
    try:
        if integer:
            whole, dot, fraction = text.partition(".")
            if dot and fraction and not fraction.strip("0"):
                text = whole
            value = int(text)
        else:
            value = float(text)
    except ValueError:
        raise Invalid(invalid) from None
    if gt is not None and not value > gt:  # NaN too
        raise Invalid(f"Input should be greater than {gt:g}")
    if ge is not None and not value >= ge:
        raise Invalid(f"Input should be greater than or equal to {ge:g}")
    if le is not None and not value <= le:
        raise Invalid(f"Input should be less than or equal to {le:g}")
    return value


def url_prefix(value: str) -> str:
    """Flower wants the prefix without slashes; an ingress path "/flower/" means "flower"."""
    return value.strip("/")


def check_basic_auth(value: str) -> None:
    """``user:password``, comma-separated for several users; the message never contains the value."""
    for pair in value.split(","):
        user, sep, password = pair.partition(":")
        if not (sep and user and password):
            raise ValueError("must be user:password (comma-separate several)")


def mask_url(url: str) -> str:
    """``amqp://user:secret@host/`` -> ``amqp://user:***@host/``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


# --- Documentation --------------------------------------------------------------------------------------

#: The README's configuration table sits between these two lines.
TABLE_BEGIN = "<!-- settings-table: generated by `python -m taskqueue.settings_registry --markdown` -->"
TABLE_END = "<!-- /settings-table -->"


def _code(text: str | None) -> str:
    return f"`{text}`" if text else "\u2013"


def markdown_table(settings: Iterable[Setting] = SETTINGS) -> str:
    """The README's configuration table, one row per variable."""
    rows = [
        "| variable | meaning | default | chart values | CLI option | read by |",
        "|---|---|---|---|---|---|",
    ]
    for s in settings:
        readers = "all" if s.components == ALL else ", ".join(c for c in COMPONENTS if c in s.components)
        values = _code(s.values_key) if s.values_key else ("set by the chart" if s.chart_fixed else "\u2013")
        rows.append(f"| `{s.env}` | {s.doc} | {s.shown_default()} | {values} | {_code(s.cli)} | {readers} |")
    return "\n".join(rows) + "\n"


def replace_table(readme: str, table: str) -> str:
    """``readme`` with the text between the markers replaced by ``table``."""
    begin, end = readme.index(TABLE_BEGIN), readme.index(TABLE_END)
    return f"{readme[:begin]}{TABLE_BEGIN}\n{table}{readme[end:]}"


def main(argv: list[str]) -> int:
    if argv == ["--markdown"]:
        sys.stdout.write(markdown_table())
        return 0
    if len(argv) == 2 and argv[0] == "--write-readme":
        path = Path(argv[1])
        path.write_text(replace_table(path.read_text(), markdown_table()))
        return 0
    sys.stderr.write("usage: python -m taskqueue.settings_registry --markdown | --write-readme README.md\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
