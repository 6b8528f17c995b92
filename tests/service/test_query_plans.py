"""Every query the service sends is planned on an index, and the list of them is docs/query-plans.md.

A scenario calls every operation of WalletService, with the replays and refusals that take paths of
their own, on a database that already holds a few thousand documents. A command listener records
every command the service sent; each distinct query shape is explained (executionStats) on that
database. The test fails on a collection scan, on a plan that examines far more documents than
match its filter, and when docs/query-plans.md does not list exactly these shapes with these
indexes. Only the two jobs that read the whole ledger by design (the audit's proof and the one-off
migration) may scan it. On MONGODB_URI the same shapes are explained by mongod.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId
from pymongo import MongoClient, monitoring

from devtools.embedded_mongo import external_uri
from devtools.paths import ROOT
from devtools.shard_router import names_bucket
from tests.routing_audit import DOCUMENTED
from tests.service.transaction_sizes import walk
from wallet_service import Request, WalletError, WalletService, committed_events
from wallet_service.storage.routing import SHARD_KEYS

DOC = ROOT / "docs" / "query-plans.md"
WHOLE_LEDGER_JOBS = {"audit_ledger", "migrate_ledger"}  # they read everything, by design
# A plan may examine at most this many times the documents matching its filter, plus SLACK (a
# refused guard, a batch of ids partly gone).
EXAMINED_PER_MATCH = 2
SLACK = 20
# Field values that are part of a query's shape (constants in the code), not of one call's data.
CONSTANT_FIELDS = {"kind", "tail", "sent"}
FRAMING = {
    "lsid",
    "txnNumber",
    "startTransaction",
    "autocommit",
    "$clusterTime",
    "$db",
    "readConcern",
    "$readPreference",
}


@dataclass
class Shape:
    text: str  # "find ledger {_id: ?, kind: 'operation'}"
    collection: str
    explain: dict  # the command to explain, with the first call's values
    match: dict  # its filter, to count the documents that match
    operations: set[str] = field(default_factory=set)
    in_transactions_of: set[str] = field(default_factory=set)  # the operations that sent it inside a transaction
    comments: set[str] = field(default_factory=set)  # why it reaches every shard (routing.SCATTER), if it says


def shape_of(value, name: str | None = None):
    if isinstance(value, dict):
        return {key: shape_of(item, name if key.startswith("$") else key) for key, item in value.items()}
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return [shape_of(item, name) for item in value]  # the clauses of $or, $and
    if isinstance(value, list):
        return [shape_of(item, name) for item in value] if name in CONSTANT_FIELDS else ["?"]
    return value if name in CONSTANT_FIELDS else "?"


def render(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {render(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(item) for item in value) + "]"
    return value if value == "?" else repr(value)


def queries_of(command: dict) -> Iterator[tuple[str, str, dict, dict]]:
    """(shape text, collection, the command to explain, the filter) of each query in a command."""
    command = {key: value for key, value in command.items() if key not in FRAMING}
    name = next(iter(command))
    collection = command[name]
    if name == "find":
        inner = {key: command[key] for key in ("filter", "sort", "hint", "projection") if key in command}
        extra = "".join(f" {key} {render(shape_of(command[key], key))}" for key in ("sort", "hint") if key in command)
        filter_ = command.get("filter", {})
        yield (
            f"find {collection} {render(shape_of(filter_))}{extra}",
            collection,
            {"find": collection, **inner},
            filter_,
        )
    elif name == "findAndModify":
        query = command.get("query", {})
        yield (
            f"findAndModify {collection} {render(shape_of(query))}",
            collection,
            {"find": collection, "filter": query},
            query,
        )
    elif name in ("update", "delete"):
        statement = command["updates" if name == "update" else "deletes"][0]
        text = f"{name} {collection} {render(shape_of(statement['q']))}"
        yield text, collection, {"find": collection, "filter": statement["q"]}, statement["q"]
    elif name == "aggregate":
        pipeline = command["pipeline"]
        match = pipeline[0].get("$match", {}) if pipeline else {}
        stages = "".join(f" → {next(iter(stage))}" for stage in pipeline[1:])
        hint = f" hint {render(shape_of(command['hint'], 'hint'))}" if "hint" in command else ""
        text = f"aggregate {collection} $match {render(shape_of(match))}{stages}{hint}"
        inner = {"aggregate": collection, "pipeline": pipeline, "cursor": {}}
        if "hint" in command:
            inner["hint"] = command["hint"]
        yield text, collection, inner, match
    elif name in ("distinct", "count"):
        query = command.get("query", {})
        text = f"{name} {collection} {render(shape_of(query))}"
        yield text, collection, {"find": collection, "filter": query}, query


class Recorder(monitoring.CommandListener):
    """The service's commands, each with the operation that sent it."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.shapes: dict[str, Shape] = {}
        self.called: set[str] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(event.command)

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass

    @contextmanager
    def operation(self, name: str) -> Iterator[None]:
        self.called.add(name)
        self.sent.clear()
        try:
            yield
        finally:
            for command in self.sent:
                for text, collection, explain, match in queries_of(command):
                    shape = self.shapes.setdefault(text, Shape(text, collection, explain, match))
                    shape.operations.add(name)
                    if "autocommit" in command:
                        shape.in_transactions_of.add(name)
                    if isinstance(command.get("comment"), str):
                        shape.comments.add(command["comment"])
            self.sent.clear()


@dataclass(frozen=True)
class Plan:
    indexes: tuple[str, ...]  # the indexes it reads; ("COLLSCAN",) for a collection scan
    examined: int
    matching: int


def plan_of(database, shape: Shape) -> Plan:
    explained = database.command("explain", shape.explain, verbosity="executionStats")
    stages = {item for key, item in walk(explained) if key == "stage"}
    indexes = {item for key, item in walk(explained) if key == "indexName"}
    if stages & {"IDHACK", "EXPRESS_IDHACK", "EXPRESS_CLUSTERED_IXSCAN"}:
        indexes.add("_id_")
    if "COLLSCAN" in stages:
        indexes = {"COLLSCAN"}
    examined = max(item for key, item in walk(explained) if key == "totalDocsExamined")
    matching = database[shape.collection].count_documents(shape.match)
    return Plan(tuple(sorted(indexes)), examined, matching)


class ListSink:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def put(self, events):
        self.events.extend(events)
        return [True] * len(events)


def populate(service: WalletService, riders: int) -> dict:
    """A town: riders with deposits and rides split between a driver and @revenue (about 45
    documents a rider), the platform's @tips account, and holds of every state."""
    driver = service.create_wallet("driver-0", "USD").wallet.id
    ids = {"driver": driver, "riders": []}
    for number in range(riders):
        rider = service.create_wallet(f"rider-{number}", "USD", opening_balance=100_000).wallet.id
        ids["riders"].append(rider)
        for deposit in range(4):
            service.deposit(rider, 1_000 + deposit, Request(idempotency_key=f"town-{number}-{deposit}"))
        for _ in range(2):  # rides
            hold = service.create_reservation(rider, 2_000).reservation.id
            splits = [{"walletId": driver, "amount": 1_500}, {"account": "@revenue", "amount": 500}]
            service.capture_reservation(hold, 2_000, splits=splits)
        service.release_reservation(service.create_reservation(rider, 300).reservation.id)
    service.open_account("@tips", "USD")
    service.roll_checkpoints()
    return ids


def scenario(service: WalletService, ids: dict, database, made: dict) -> Iterator[tuple[str, Callable[[], object]]]:
    """Every operation, as (name, call); a refusal is a call that raises WalletError. `database` is
    the test's own access, to take away a wallet a hold will be captured to: the expiry job skips
    that hold, and looks for the other due holds past it. `made` keeps what later calls use."""
    rider, other, driver = ids["riders"][0], ids["riders"][1], ids["driver"]
    keys = (f"plan-{number}" for number in itertools.count())
    later = datetime.now(UTC) + timedelta(days=30)

    def remember(name: str, value):
        made[name] = value
        return value

    yield (
        "create_wallet",
        lambda: remember(
            "new", service.create_wallet("new", "USD", Request(idempotency_key="open"), opening_balance=50)
        ),
    )
    yield (
        "create_wallet",
        lambda: service.create_wallet("new", "USD", Request(idempotency_key="open"), opening_balance=50),
    )
    yield "create_wallet", lambda: service.create_wallet("new", "USD")  # taken
    yield "get_wallet", lambda: service.get_wallet(rider, owner_id="rider-0")
    yield "get_wallet", lambda: service.get_wallet(rider, owner_id="someone-else")
    yield "set_wallet_alerts", lambda: service.set_wallet_alerts(rider, {"availableBelow": 500})
    yield "freeze_wallet", lambda: service.freeze_wallet(other)
    yield "withdraw", lambda: service.withdraw(other, 1, Request(idempotency_key=next(keys)))  # frozen
    yield "unfreeze_wallet", lambda: service.unfreeze_wallet(other)

    def deposit_collecting_its_events():
        with committed_events() as committed:
            service.deposit(rider, 700, Request(idempotency_key="deposit"))
        remember("deposit_events", committed)

    yield "deposit", deposit_collecting_its_events
    yield "deposit", lambda: service.deposit(rider, 700, Request(idempotency_key="deposit"))  # a replay
    yield "deposit", lambda: service.deposit(rider, 701, Request(idempotency_key="deposit"))  # the key, another request
    yield "withdraw", lambda: service.withdraw(rider, 300, Request(idempotency_key=next(keys), owner_id="rider-0"))
    yield "withdraw", lambda: service.withdraw(rider, 10**12, Request(idempotency_key="too-much"))
    yield "withdraw", lambda: service.withdraw(rider, 10**12, Request(idempotency_key="too-much"))  # its replay
    yield "transfer", lambda: service.transfer(rider, other, 250, Request(idempotency_key=next(keys)))
    yield "transfer", lambda: service.transfer(rider, str(ObjectId()), 250, Request(idempotency_key=next(keys)))
    yield (
        "create_reservation",
        lambda: remember(
            "hold",
            service.create_reservation(
                rider, 1_000, Request(idempotency_key=next(keys)), on_expiry="capture", capture_to={"walletId": driver}
            ),
        ),
    )
    yield (
        "increment_reservation",
        lambda: service.increment_reservation(made["hold"].reservation.id, 200, ttl_seconds=600),
    )
    yield "get_reservation", lambda: service.get_reservation(made["hold"].reservation.id, owner_id="rider-0")
    yield "list_reservations", lambda: remember("holds", service.list_reservations(rider, limit=2))
    yield "list_reservations", lambda: service.list_reservations(rider, limit=2, cursor=made["holds"].next_cursor)
    yield "list_reservations", lambda: service.list_reservations(rider, status="CAPTURED", limit=1)
    yield (
        "capture_reservation",
        lambda: service.capture_reservation(
            made["hold"].reservation.id, 400, Request(idempotency_key=next(keys)), final=False
        ),
    )
    tip = [
        {"walletId": driver, "amount": 300},
        {"account": "@tips", "amount": 100},
        {"account": "@revenue", "amount": 100},
    ]
    yield "capture_reservation", lambda: service.capture_reservation(made["hold"].reservation.id, 500, splits=tip)
    yield "capture_reservation", lambda: service.capture_reservation(made["hold"].reservation.id, 1)  # ended
    yield "refund_reservation", lambda: service.refund_reservation(made["hold"].reservation.id, 150)
    yield (
        "refund_reservation",
        lambda: service.refund_reservation(
            made["hold"].reservation.id, 50, sources=[{"account": "@tips", "amount": 50}]
        ),
    )
    yield (
        "release_reservation",
        lambda: service.release_reservation(service.create_reservation(other, 80).reservation.id),
    )
    yield "release_reservation", lambda: service.release_reservation(str(ObjectId()))
    yield (
        "create_reservation",
        lambda: service.create_reservation(other, 90, Request(idempotency_key=next(keys)), ttl_seconds=60),
    )
    yield "open_account", lambda: service.open_account("@tax", "USD")
    yield "open_account", lambda: service.open_account("@tax", "USD")  # open already
    yield "get_account", lambda: service.get_account("@revenue", "USD")
    yield "get_account", lambda: service.get_account("@tax", "USD")
    yield "get_account", lambda: service.get_account("@nothing", "USD")
    yield "list_account_entries", lambda: remember("postings", service.list_account_entries("@revenue", "USD", limit=3))
    yield (
        "list_account_entries",
        lambda: service.list_account_entries("@revenue", "USD", cursor=made["postings"].next_cursor),
    )
    yield "list_transactions", lambda: remember("journal", service.list_transactions(rider, limit=3))
    yield "list_transactions", lambda: service.list_transactions(rider, limit=3, cursor=made["journal"].next_cursor)
    yield (
        "list_transactions",
        lambda: remember("deposits", service.list_transactions(rider, limit=2, entry_type="DEPOSIT")),
    )
    yield (
        "list_transactions",
        lambda: service.list_transactions(rider, limit=2, entry_type="DEPOSIT", cursor=made["deposits"].next_cursor),
    )
    yield "balance_at", lambda: service.balance_at(rider, datetime.now(UTC) - timedelta(seconds=1))
    yield "publish_events", lambda: service.publish_events(ListSink(), committed=made["deposit_events"])
    yield "publish_events", lambda: service.publish_events(ListSink(), older_than_seconds=0)
    lost = service.create_wallet("gone", "USD").wallet.id
    yield (
        "expire_reservations",
        lambda: service.create_reservation(other, 70, on_expiry="capture", capture_to={"walletId": lost}),
    )
    yield "expire_reservations", lambda: database["wallets"].delete_one({"_id": ObjectId(lost)})
    yield "expire_reservations", lambda: remember("expired", service.expire_reservations(now=later, batch_size=1))
    yield "roll_checkpoints", lambda: service.roll_checkpoints()
    yield "audit_ledger", lambda: service.audit_ledger(batch_size=50)
    yield "migrate_ledger", lambda: service.migrate_ledger()


@dataclass(frozen=True)
class Explained:
    called: set[str]  # the operations the scenario called
    plans: dict[str, tuple[Shape, Plan]]  # each query shape they sent, and its plan


@pytest.fixture(scope="module")
def explained(mongo_uri, mongo_client) -> Iterator[Explained]:
    """Each query shape the scenario sent, with its plan on the populated database."""
    recorder = Recorder()
    name = f"wallet_plans_{ObjectId()}"
    with MongoClient(mongo_uri, appname="wallet", event_listeners=[recorder]) as service_client:
        service = WalletService(service_client[name], time_budget=20.0)
        service.ensure_indexes()
        ids = populate(service, riders=60)
        made: dict = {}
        for operation, call in scenario(service, ids, mongo_client[name], made):
            with recorder.operation(operation), suppress(WalletError):
                call()
    database = mongo_client[name]
    try:
        assert database["ledger"].estimated_document_count() > 2_000
        assert made["expired"].skipped == 1  # so the due holds past it were looked for
        plans = {text: (shape, plan_of(database, shape)) for text, shape in recorder.shapes.items()}
        yield Explained(recorder.called, plans)
    finally:
        mongo_client.drop_database(name)


def test_the_scenario_sends_every_operation_of_the_service(explained):
    public = {name for name in dir(WalletService) if not name.startswith("_")} - {"ensure_indexes", "ping"}
    assert public - explained.called == set()


def by_the_jobs_that_read_everything(shape: Shape) -> bool:
    return shape.operations <= WHOLE_LEDGER_JOBS


def test_every_query_outside_the_whole_ledger_jobs_reads_an_index(explained):
    scans = {
        text: sorted(shape.operations)
        for text, (shape, plan) in explained.plans.items()
        if plan.indexes == ("COLLSCAN",) and not by_the_jobs_that_read_everything(shape)
    }
    assert scans == {}


def test_no_plan_examines_far_more_documents_than_match(explained):
    wasteful = {
        text: (plan.indexes, plan.examined, plan.matching)
        for text, (shape, plan) in explained.plans.items()
        if plan.examined > EXAMINED_PER_MATCH * plan.matching + SLACK and not by_the_jobs_that_read_everything(shape)
    }
    assert wasteful == {}


def test_the_whole_ledger_jobs_transactions_read_indexes(explained):
    """The audit reads the whole ledger outside any transaction; inside one (each must end within the
    database's transaction lifetime, whatever the ledger's size) only what an index bounds: a batch's
    wallets by their ids (listed before, outside it: the embedded server has no ordered walk of
    `_id`, so listing them reads every wallet there), and their open holds."""
    unbounded = {
        text: (plan.indexes, plan.examined, plan.matching)
        for text, (shape, plan) in explained.plans.items()
        if shape.in_transactions_of & WHOLE_LEDGER_JOBS
        and (plan.indexes == ("COLLSCAN",) or plan.examined > EXAMINED_PER_MATCH * plan.matching + SLACK)
    }
    assert unbounded == {}
    sent = {text for text, (shape, _) in explained.plans.items() if "audit_ledger" in shape.in_transactions_of}
    assert "aggregate ledger $match {kind: 'entry', createdAt: {$gte: ?}} → $group hint ?" in sent


def documented() -> dict[str, tuple[str, str]]:
    """docs/query-plans.md's table: shape -> (index, the operations that send it). A note after the
    index in parentheses (what mongod reads instead) is for people."""
    rows = re.findall(r"^\| `(.+?)` \| (.+?) \| (.+?) \|$", DOC.read_text(), flags=re.MULTILINE)
    return {shape: (index.split(" (")[0], operations) for shape, index, operations in rows}


def table_row(shape: Shape, plan: Plan) -> tuple[str, str]:
    index = "none: reads it all" if plan.indexes == ("COLLSCAN",) else ", ".join(f"`{name}`" for name in plan.indexes)
    return index, ", ".join(sorted(shape.operations))


def test_docs_list_every_query_shape_with_its_index(explained):
    """The shapes and who sends them hold on every server; the indexes are the embedded server's
    (mongod may read another index of the same prefix where several serve)."""
    found = {text: table_row(shape, plan) for text, (shape, plan) in explained.plans.items()}
    table = "\n".join(f"| `{text}` | {index} | {operations} |" for text, (index, operations) in sorted(found.items()))
    listed = documented()
    if external_uri():
        found = {text: operations for text, (_, operations) in found.items()}
        listed = {text: operations for text, (_, operations) in listed.items()}
    assert listed == found, f"docs/query-plans.md's table is stale; the rows as found:\n{table}"


# ---------------------------------------------------------------- on a sharded cluster

SHARDING_DOC = ROOT / "docs" / "sharding.md"


def reach(shape: Shape) -> str:
    """Where the query would go on a cluster sharded by the routing key (as devtools/shard_router.py
    routes it): one shard when its filter names the bucket, every shard when not, and why (its
    comment: routing.SCATTER)."""
    if shape.collection not in SHARD_KEYS:
        return "the primary shard (unsharded)"
    return "targeted" if names_bucket(shape.match) else " / ".join(sorted(shape.comments)) or "every shard"


def test_docs_say_where_every_query_shape_goes_on_a_sharded_cluster(explained):
    """The command audit: docs/sharding.md lists each query shape the service sends with where it
    would go on a sharded cluster; what is not targeted says which documented reason it has."""
    found = {text: (reach(shape), ", ".join(sorted(shape.operations))) for text, (shape, _) in explained.plans.items()}
    for text, (where, _) in found.items():
        assert where in ("targeted", "the primary shard (unsharded)") or set(where.split(" / ")) <= DOCUMENTED, text
    table = "\n".join(f"| `{text}` | {where} | {operations} |" for text, (where, operations) in sorted(found.items()))
    section = SHARDING_DOC.read_text().split("## Every query shape", 1)[1]
    rows = re.findall(r"^\| `(.+?)` \| (.+?) \| (.+?) \|$", section, flags=re.MULTILINE)
    listed = {text: (where, operations) for text, where, operations in rows}
    assert listed == found, f"docs/sharding.md's table is stale; the rows as found:\n{table}"
