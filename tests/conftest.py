"""Fixtures: one database server per test session, a fresh database per test.

The server is MONGODB_URI when set (a real replica set, started with enableTestCommands=1 for
the failpoints) and the embedded SecantusDB otherwise; every test must pass on both.

Two clients: the service under test connects as `wallet` (its appname, as deployed), the tests
read, check and arm failpoints through a client of their own, so a failpoint confined to
`wallet` (devtools/failpoints.py) never disturbs the checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pymongo import MongoClient, monitoring
from pymongo.database import Database

from devtools.embedded_mongo import EmbeddedMongo, external_uri
from devtools.failpoints import FailPoints
from tests.routing_audit import RoutingAudit
from wallet_service import WalletService

SERVICE_APP_NAME = "wallet"
GROUPS = ("unit", "service", "handlers", "e2e", "sam", "tooling")  # tests/<group>/, one marker each
TESTS = Path(__file__).parent


# The modules that make most of the in-process suite's time (measured with --durations): the
# stateful model, the fault matrix, queries at scale, the launcher's differential tests, the embedded database's
# restarts and lifetimes, the races, the benchmarks' own tests. `make check` leaves them to `make test`.
SLOW = {
    "service/test_stateful.py",
    "service/test_query_plans.py",
    "service/test_concurrency.py",
    "service/test_faults.py",
    "tooling/test_secantus_launcher.py",
    "tooling/test_embedded_database.py",
    "tooling/test_benchmarks.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries the marker of its folder, and `slow` when its module is in SLOW: `make check`
    runs `-m "not e2e and not sam and not slow"`, `make test` everything."""
    for item in items:
        where = item.path.relative_to(TESTS)
        group = where.parts[0]
        if group not in GROUPS:
            raise pytest.UsageError(f"{item.path}: every test lives in one of tests/{{{','.join(GROUPS)}}}/")
        item.add_marker(group)
        if where.as_posix() in SLOW:
            item.add_marker("slow")


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory) -> Iterator[EmbeddedMongo | None]:
    """The embedded server (a process of its own), or None when MONGODB_URI names a real one."""
    if external_uri():
        yield None
        return
    folder = tmp_path_factory.mktemp("database")
    with EmbeddedMongo(storage_path=folder / "data", log_path=folder / "secantus.log") as server:
        yield server


@pytest.fixture(scope="session")
def mongo_uri(embedded_server: EmbeddedMongo | None) -> str:
    return embedded_server.uri if embedded_server else external_uri()


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[MongoClient]:
    """The tests' own client: reads, checks, failpoints."""
    client = MongoClient(mongo_uri, appname="wallet-tests", serverSelectionTimeoutMS=5000, maxPoolSize=64)
    yield client
    client.close()


@dataclass(frozen=True)
class Answer:
    """How one command of the service's ended: `code` of the error or write concern error, or None;
    `network` when the connection failed instead of an answer."""

    command: str
    code: int | None
    network: bool


@dataclass
class CommandLog(monitoring.CommandListener):
    """The service's commands as its client saw them end, and hooks run just before a command is sent."""

    answers: list[Answer] = field(default_factory=list)
    before: dict[str, list[Callable[[], None]]] = field(default_factory=dict)
    sent: list[dict] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(event.command)
        hooks = self.before.get(event.command_name)
        if hooks:
            hooks.pop(0)()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        concern = event.reply.get("writeConcernError") or {}
        self.answers.append(Answer(event.command_name, concern.get("code"), network=False))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        failure = event.failure or {}
        network = "code" not in failure and failure.get("errtype") in ("AutoReconnect", "NetworkTimeout")
        code = failure.get("code") or (failure.get("writeConcernError") or {}).get("code")
        self.answers.append(Answer(event.command_name, code, network))

    def of(self, command: str) -> list[Answer]:
        return [answer for answer in self.answers if answer.command == command]

    def clear(self) -> None:
        self.answers.clear()
        self.before.clear()
        self.sent.clear()


_SERVICE_COMMANDS = CommandLog()
_ROUTING_AUDIT = RoutingAudit()


@pytest.fixture(scope="session")
def service_client(mongo_uri: str, mongo_client: MongoClient) -> Iterator[MongoClient]:
    """The service's client, named as the deployed functions name theirs; its commands audited."""
    _ROUTING_AUDIT.reader = mongo_client
    client = MongoClient(
        mongo_uri,
        appname=SERVICE_APP_NAME,
        serverSelectionTimeoutMS=5000,
        maxPoolSize=64,
        event_listeners=[_SERVICE_COMMANDS, _ROUTING_AUDIT],
    )
    yield client
    client.close()


@pytest.fixture(autouse=True)
def routing_audit() -> Iterator[None]:
    """Fails a test whose service sent a command that reaches every shard without a documented
    reason (tests/routing_audit.py)."""
    _ROUTING_AUDIT.clear()
    yield
    violations, _ROUTING_AUDIT.violations = list(_ROUTING_AUDIT.violations), []
    assert not violations, "commands that name no bucket and no documented reason:\n" + "\n".join(violations)


@pytest.fixture
def service_commands(service_client: MongoClient) -> Iterator[CommandLog]:
    """What the service's client sent from here on, and how each command ended."""
    _SERVICE_COMMANDS.clear()
    yield _SERVICE_COMMANDS
    _SERVICE_COMMANDS.clear()


@pytest.fixture
def database(mongo_client: MongoClient) -> Iterator[Database]:
    name = f"wallet_test_{uuid.uuid4().hex[:12]}"
    yield mongo_client[name]
    # A transaction a failed test left open would hold the drop until the server's transaction
    # lifetime ends (SecantusDB ends none by a timer): end every session first.
    mongo_client.admin.command("killAllSessions", [])
    mongo_client.drop_database(name)


@pytest.fixture
def service_database(service_client: MongoClient, database: Database) -> Database:
    """The test's database as the service reaches it."""
    return service_client[database.name]


@pytest.fixture
def service(service_database: Database) -> WalletService:
    wallet_service = WalletService(service_database, time_budget=20.0)
    wallet_service.ensure_indexes()
    return wallet_service


@pytest.fixture
def failpoints(mongo_client: MongoClient) -> Iterator[FailPoints]:
    """The server's failCommand failpoint, confined to the service's connections; off before and after."""
    points = FailPoints(mongo_client, app_name=SERVICE_APP_NAME)
    points.off()
    yield points
    points.off()


@pytest.fixture
def lambda_env(monkeypatch, mongo_uri: str, mongo_client: MongoClient) -> Iterator[str]:
    """The environment a deployed function has, pointing at a fresh database; yields its name."""
    from wallet_lambda import runtime

    name = f"wallet_lambda_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DATABASE", name)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "wallet")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Wallet")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    runtime.reset()
    yield name
    runtime.reset()
    mongo_client.drop_database(name)
