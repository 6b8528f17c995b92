"""The machinery of `make bench` (benchmarks/): that the floors replay what the service does, that
write conflicts are counted from the database's answers, that journal pages and plans are read
right, that the outbox costs a deposit no round trip and publishing sends each event once, and what
the report says; that a grown database is copies of a town with ids of their own that pass the audit,
and that the five operations of the scale measurement run on it. No timing is checked."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure

from benchmarks import answer_first, events, floors, journal, replay, report, scale, suite, town
from benchmarks.monitor import WRITE_CONFLICT, Answers, CommandRecorder
from benchmarks.roundtrips import RoundTrips, measure_expiry, measure_operation
from benchmarks.scenarios import OPERATIONS, prepare
from benchmarks.server import ConflictCounters, is_secantus
from benchmarks.throughput import Rate
from wallet_service import WalletService
from wallet_service.storage import documents


@pytest.fixture
def recorder() -> CommandRecorder:
    return CommandRecorder()


@pytest.fixture
def client(mongo_uri: str, recorder: CommandRecorder) -> Iterator[MongoClient]:
    with MongoClient(mongo_uri, serverSelectionTimeoutMS=5000, event_listeners=[recorder]) as client:
        yield client


@pytest.fixture
def bench_service(client: MongoClient, database: Database) -> WalletService:
    service = WalletService(client[database.name], time_budget=20.0)
    service.ensure_indexes()
    return service


def _entries_are_dense(database: Database, wallet_id: ObjectId) -> None:
    """Every entry of the wallet sits at `<wallet>:<sequence>`, the sequences are 1..n, n the wallet's."""
    sequences = [
        entry["sequence"]
        for entry in database[documents.LEDGER]
        .find({"walletId": wallet_id, "kind": documents.ENTRY})
        .sort("sequence", 1)
        if entry["_id"] == f"{wallet_id}:{entry['sequence']}"
    ]
    wallet = database[documents.WALLETS].find_one({"_id": wallet_id})
    assert sequences == list(range(1, wallet["sequence"] + 1))


@pytest.mark.parametrize("operation", OPERATIONS)
def test_the_replay_does_what_the_service_did(operation, bench_service, client, recorder, database):
    """Each replayed call inserts what the service's call inserted, with the journal left dense, and
    a replayed capture or release closes the hold it was given."""
    calls = 3
    scenario = prepare(bench_service, operation, f"replay-{operation}", 2, spare_holds=calls)
    scenario.call()
    recorder.capture()
    scenario.call()
    captured = replay.Replay(recorder.captured())
    assert captured.names[-1] == "commitTransaction"
    inserted: Counter[str] = Counter()
    for _, command in captured.commands:
        if "insert" in command:
            inserted[command["insert"]] += len(command["documents"])
    before = {name: database[name].count_documents({}) for name in (documents.LEDGER, documents.WALLETS)}
    targets = None
    if scenario.holds:
        targets = {ObjectId(scenario.holds[1]): [ObjectId(hold) for hold in scenario.spare_holds]}
    replay.run(client, captured.calls(calls, targets))
    for name, count in before.items():
        assert database[name].count_documents({}) == count + calls * inserted[name], name
    for wallet in database[documents.WALLETS].find({}, {"_id": 1}):
        _entries_are_dense(database, wallet["_id"])
    if scenario.holds:
        replayed_holds = [ObjectId(hold) for hold in scenario.spare_holds]
        assert database[documents.LEDGER].count_documents({"_id": {"$in": replayed_holds}, "status": "HELD"}) == 0


ONE_HOLD_AND_ONE_WALLET = ("findAndModify", "findAndModify", "insert", "commitTransaction")


@pytest.mark.parametrize(
    ("operation", "commands"),
    [
        ("increment_reservation", ONE_HOLD_AND_ONE_WALLET),
        ("capture_part", ONE_HOLD_AND_ONE_WALLET),
        ("capture_reservation", ONE_HOLD_AND_ONE_WALLET),
        ("capture_split", ("findAndModify",) * 3 + ("insert", "commitTransaction")),
    ],
)
def test_round_trips_of_the_hold_operations(operation, commands, bench_service, recorder):
    """An increment and a capture in parts (final false) take 4 round trips, as a final capture does:
    the hold's guarded update, its wallet's, one insert, the commit; a driver's wallet in the splits
    adds one."""
    measured = measure_operation(bench_service, recorder, operation, operation)
    assert (measured.commands, measured.steady) == (commands, True)
    assert measured.per_call == len(commands) <= report.BUDGETS[operation]
    assert measured.publishing_commands == ("find", "update")  # its wallets' unsent events, marked sent
    assert measured.in_all == measured.per_call + 2 <= report.IN_ALL_BUDGETS[operation]


def test_a_replay_answers_within_four_round_trips_and_publishes_nothing(bench_service, recorder):
    measured = measure_operation(bench_service, recorder, "deposit_replay", "deposit_replay")
    assert measured.steady
    assert measured.per_call <= report.BUDGETS["deposit_replay"] == 4
    assert (measured.publishing, measured.publishing_commands) == (0, ())


def test_expiry_round_trips_per_hold_with_captures_mixed_in(bench_service, recorder, database):
    """A batch of 100 due holds, a third released, a third captured to @revenue, a third to a
    driver's wallet, takes a fixed number of round trips: under 0.25 per hold."""
    measured = measure_expiry(bench_service, recorder, "expiry", holds=100)
    assert measured.per_call < report.BUDGETS[report.EXPIRY]
    assert measured.commands.count("commitTransaction") == 1
    assert measured.publishing_commands == ("find", "update")  # every batch's events: one read, one update
    assert measured.in_all <= report.IN_ALL_BUDGETS[report.EXPIRY] == 0.1
    holds = list(database[documents.LEDGER].find({"kind": documents.RESERVATION}))
    assert {hold["status"] for hold in holds} == {"EXPIRED"}
    kinds = Counter("release" if hold["onExpiry"] == "release" else next(iter(hold["captureTo"])) for hold in holds)
    assert kinds == {"release": 4 + 34, "account": 3 + 33, "walletId": 3 + 33}  # the warm-up's 10, then the 100
    captured = [hold for hold in holds if hold["onExpiry"] == "capture"]
    assert all(hold["capturedAmount"] == hold["amount"] == 1 for hold in captured)
    assert all([capture["final"] for capture in hold["captures"]] == [True] for hold in captured)
    drivers = database[documents.WALLETS].find({"ownerId": {"$regex": "-driver$"}})
    assert sorted(driver["balance"] for driver in drivers) == [3, 33]


def test_the_floors_measure_all_three_paths(bench_service, client, recorder, database):
    result = floors.measure(client, recorder, bench_service, database.name, "capture_reservation", rounds=2, calls=2)
    assert result.commands == ("findAndModify", "findAndModify", "insert", "commitTransaction")
    assert min(result.service, result.replay, result.minimal, result.ratio) > 0
    assert database[replay.MINIMAL_INSERTS].count_documents({}) == 1 + (floors.WARM_UP + 2 * 2)


def test_write_conflicts_are_counted_from_the_answers(client, recorder, database):
    """Two transactions writing one document: the second write is answered 112 WriteConflict."""
    collection = client[database.name]["conflicts"]
    collection.insert_one({"_id": 1, "n": 0})
    recorder.take_answers()
    with client.start_session() as first, client.start_session() as second:
        first.start_transaction()
        second.start_transaction()
        collection.update_one({"_id": 1}, {"$inc": {"n": 1}}, session=first)
        with pytest.raises(OperationFailure) as raised:
            collection.update_one({"_id": 1}, {"$inc": {"n": 1}}, session=second)
        assert raised.value.code == WRITE_CONFLICT
        first.commit_transaction()
    answers = recorder.take_answers()
    assert answers.write_conflicts == 1
    assert answers.commits == 1


def test_the_server_counters_are_read_only_from_mongod(client):
    status = client.admin.command("serverStatus")
    counters = ConflictCounters(client)
    assert counters.available is not is_secantus(status)
    if counters.available:
        assert set(counters.read()) == {"writeConflicts", "totalAborted"}
    else:
        assert counters.read() is None
    assert ConflictCounters.difference({"a": 1}, {"a": 4}) == {"a": 3}
    assert ConflictCounters.difference(None, None) is None


def test_journal_pages_first_and_deep(bench_service, client, recorder, database, monkeypatch):
    monkeypatch.setattr(journal, "ENTRIES", 400)  # 100 deposits
    monkeypatch.setattr(journal, "LIMIT", 10)
    monkeypatch.setattr(journal, "DEEP_PAGE", 10)
    monkeypatch.setattr(journal, "SAMPLES", 2)
    wallet_id = journal.build(bench_service, client[database.name])
    wallet = bench_service.get_wallet(wallet_id)
    assert (wallet.sequence, wallet.balance, wallet.held) == (400, 100 * 60, 0)
    pages = journal.measure(bench_service, client[database.name], recorder, wallet_id)
    assert [(page.label, page.number, page.entries, page.sequences) for page in pages] == [
        ("whole journal", 1, 10, "400..391"),
        ("whole journal", 10, 10, "310..301"),
        ("DEPOSIT entries", 1, 10, "397..361"),
        ("DEPOSIT entries", 10, 10, "37..1"),
    ]
    assert [page.plan.index for page in pages] == ["wallet_entries"] * 2 + ["wallet_entries_by_type"] * 2
    assert pages[0].plan.keys_examined == 10  # an exact range of the sequence, at any depth
    assert pages[1].plan.keys_examined == 10


def test_plans_of_both_servers_are_summarized():
    classic = {
        "queryPlanner": {
            "winningPlan": {
                "stage": "LIMIT",
                "inputStage": {"stage": "FETCH", "inputStage": {"stage": "IXSCAN", "indexName": "wallet_entries"}},
            }
        },
        "executionStats": {"totalKeysExamined": 51, "totalDocsExamined": 51},
    }
    slot_based = {"queryPlanner": {"winningPlan": {"queryPlan": classic["queryPlanner"]["winningPlan"]}}}
    assert journal.summarize(classic) == journal.Plan("LIMIT < FETCH < IXSCAN", "wallet_entries", 51, 51)
    assert journal.summarize(slot_based).index == "wallet_entries"
    assert journal.summarize({"queryPlanner": {"winningPlan": {"stage": "COLLSCAN"}}}).index is None


def test_a_deposit_writes_its_event_in_its_own_insert_and_publishing_sends_each_once(bench_service, recorder):
    """With the outbox, a deposit still takes 3 round trips, its event in its one insert; each
    publishing call sends its deposit's event alone, to memory or to a file, in 2 round trips."""
    measured = events.latency(bench_service, recorder, rounds=2, calls=2)
    assert measured.deposit_commands == ("findAndModify", "insert", "commitTransaction")
    assert measured.deposit_commands == measure_operation(bench_service, recorder, "deposit", "deposit").commands
    assert Counter(measured.inserted)[documents.EVENT] == 1
    assert Counter(measured.inserted)[documents.OPERATION] == 1
    assert measured.publish_commands == ("find", "update")
    assert measured.published == 2 * 2 * 2  # two publishing paths, two rounds of two calls
    assert set(measured.milliseconds) == set(events.PATHS)
    assert min(measured.ratios.values()) > 0
    assert all(low <= high for low, high in measured.quartiles.values())


@pytest.mark.parametrize(("count", "wallets", "sink_calls"), [(30, 5, 6), (12, 1, 12), (25, 25, 3)])
def test_the_publisher_sends_every_event_once_each_wallet_in_order(bench_service, recorder, count, wallets, sink_calls):
    """Each round sends every wallet's next event, 10 to a sink call; those taken are marked in one
    update at the end (under 500): the round trips are counted, not timed."""
    measured = events.publisher(bench_service, recorder, "publisher", events=count, wallets=wallets)
    assert (measured.events, measured.wallets, measured.sink_calls) == (count, wallets, sink_calls)
    assert measured.round_trips == 3  # the due wallets, their events, one update
    assert bench_service.publish_events(events.MemorySink(), older_than_seconds=0).sent == 0


def test_the_file_sink_appends_one_json_line_per_event(tmp_path):
    event = {
        "_id": "evt_" + "a" * 24,
        "type": "wallet.deposit.created",
        "walletId": ObjectId(),
        "ownerId": "rider",
        "currency": "USD",
        "version": 2,
        "index": 0,
        "sequence": 2,
        "operationId": "call:1",
        "occurredAt": datetime(2026, 11, 30, 12, tzinfo=UTC),
        "data": {"operationId": "call:1"},
    }
    sink = events.FileSink(tmp_path / "events.jsonl")
    try:
        assert sink.put([event, {**event, "_id": "evt_" + "b" * 24}]) == [True, True]
        assert sink.put([event]) == [True]
    finally:
        sink.close()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["evt_" + "a" * 24, "evt_" + "b" * 24, "evt_" + "a" * 24]
    assert lines[0]["occurredAt"] == "2026-11-30T12:00:00Z"


def _run(*, server_counters: bool, deposit_trips: int) -> report.Run:
    run = report.Run(
        header={"Date": "today", "Commit": "abc123"},
        settings={"rounds": 7, "calls_per_round": 20, "calls": 400, "seconds": 2.0, "expiry_trip_holds": 100},
        server_counters=server_counters,
    )
    run.round_trips["deposit"] = RoundTrips(
        "deposit", deposit_trips, ("findAndModify",) * deposit_trips, True, 2, ("find", "update")
    )
    run.floors["deposit"] = floors.Floors(
        "deposit", 90.0, 100.0, 200.0, 0.85, ("findAndModify", "insert"), (0.8, 0.9), 1250.0, 1000.0
    )
    answers = Answers(commits=10, failed=Counter({WRITE_CONFLICT: 2, 11000: 1}))
    run.threads["deposit"] = {1: Rate(10, 1.0, answers=answers, server={"writeConflicts": 2, "totalAborted": 1})}
    run.events = events.Latency(
        milliseconds={"deposit": 4.0, "memory": 6.0, "file": 6.5},
        ratios={"memory": 1.5, "file": 1.625},
        quartiles={"memory": (1.4, 1.6), "file": (1.5, 1.75)},
        deposit_commands=("findAndModify", "insert", "commitTransaction"),
        inserted=("entry", "entry", "event", "operation"),
        publish_commands=("find", "update"),
        published=40,
    )
    run.publishers = [events.Publisher(2000, 200, 2.0, 200, 7), events.Publisher(500, 1, 1.0, 500, 3)]
    run.http = answer_first.HttpLatency(
        300, {"events": 5.5, "no sink": 5.0}, {"events": 9.0, "no sink": 8.0}, 300, 0.05
    )
    return run


def test_the_report_says_what_is_over_budget_and_below_target():
    within = report.render(_run(server_counters=False, deposit_trips=3))
    assert "Every operation is within its round-trip budget." in within
    assert "Below the target of 0.90: deposit." in within
    assert "| deposit | 90 | 100 | 0.85 (below target) | 0.80-0.90 | 1,250 / 1,000 / +250 | 200 | 2 |" in within
    assert "| deposit | 1 | 10 | 10 | 10 | 2 | 0 | 1 | 0 | 0 |" in within
    assert "SecantusDB exposes no transaction or write-conflict counters" in within
    nearly = _run(server_counters=False, deposit_trips=3)
    nearly.floors["deposit"] = floors.Floors("deposit", 89.7, 100.0, 200.0, 0.897, ("insert",), (0.89, 0.9))
    assert "| 0.897 (below target) |" in report.render(nearly)  # not "0.90 (below target)"
    over = _run(server_counters=True, deposit_trips=4)
    assert report.over_budget(over) == [
        "deposit takes 4 round trips before its answer, budget 3",
        "deposit takes 6 round trips in all, budget 5",
    ]
    assert (
        "| deposit | 4 | 2 | 6 | <= 3 / <= 5 | 6 | "
        "findAndModify, findAndModify, findAndModify, findAndModify, then find, update |" in report.render(over)
    )
    rendered = report.render(over)
    assert "| deposit | 1 | 10 | 10 | 10 | 2 | 0 | 1 | 0 | 0 | 2 | 1 |" in rendered
    assert "mongod writeConflicts" in rendered


def test_the_report_shows_the_outbox_and_the_publisher():
    rendered = report.render(_run(server_counters=False, deposit_trips=3))
    assert (
        "A deposit writes its event in its own insert: findAndModify, insert, commitTransaction (3 round trips; "
        "the insert carried 4 documents: entry, entry, event, operation)" in rendered
    )
    assert "once the answer has left, as a function does: find, update (2 round trips)" in rendered
    assert "| deposit alone | 4.00 | 1.00 |  |" in rendered
    assert "| deposit, then publish its event (in-memory sink) | 6.00 | 1.50 | 1.40-1.60 |" in rendered
    assert "| deposit, then publish its event (file sink, a JSON line each) | 6.50 | 1.62 | 1.50-1.75 |" in rendered
    assert "| 2,000 events of 200 wallets | 2.00 | 1,000 | 200 | 7 |" in rendered
    assert "| 500 events of 1 wallet | 1.00 | 500 | 500 | 3 |" in rendered
    assert "With events on, p50 is 1.10 of no sink; 300 of 300 events were in the file 0.05 s after" in rendered
    assert "| events | 5.5 | 9.0 |" in rendered
    assert rendered.index("## Events") < rendered.index("## Notes")


# ---------------------------------------------------------------- as the database grows (benchmarks/scale.py)

TINY_WALLETS, TINY_DOCUMENTS = 200, 1_500


@pytest.fixture(scope="module")
def made_town(mongo_client: MongoClient) -> town.Made:
    return town.make(mongo_client)


@pytest.fixture(scope="module")
def scaled(
    mongo_client: MongoClient, made_town: town.Made, embedded_server
) -> Iterator[tuple[Database, Database, scale.Scale]]:
    """One tiny scale measurement (2 rounds of 2 calls), its two databases kept for the checks, then
    dropped on MONGODB_URI's server (SecantusDB takes seconds to drop them, and its storage is the
    session's own)."""
    tag = uuid.uuid4().hex[:8]
    near, grown = mongo_client[f"wallet_test_near_{tag}"], mongo_client[f"wallet_test_grown_{tag}"]
    try:
        measured = scale.measure(
            mongo_client,
            near,
            grown,
            wallets=TINY_WALLETS,
            documents_=TINY_DOCUMENTS,
            rounds=2,
            calls=2,
            journal_cycles=15,
            made=made_town,
        )
        yield near, grown, measured
    finally:
        if embedded_server is None:
            mongo_client.drop_database(near.name)
            mongo_client.drop_database(grown.name)


def _ids(documents_: list[dict]) -> set:
    """Every id in the documents: ObjectIds, ids written in strings (operation ids, 24-hex ids in an
    entry's or event's _id, in JSON), owner ids, reference ids, call ids and every _id."""
    found: set = set()

    def walk(value, name: str | None = None) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, key)
        elif isinstance(value, list):
            for item in value:
                walk(item, name)
        elif isinstance(value, ObjectId):
            found.add(str(value))
        elif isinstance(value, str):
            found.update(token for token in town.TOKENS.findall(value) if not token.startswith("town-"))
            if name in ("ownerId", "referenceId", "callId"):
                found.add(value)

    for document in documents_:
        walk(document)
        found.add(json.dumps(document["_id"], sort_keys=True, default=str))
    return found


def test_the_town_holds_every_kind_of_document_at_the_default_ratio(made_town):
    kinds = Counter(document["kind"] for document in made_town.town.ledger)
    assert set(kinds) == set(town.CLONED_KINDS)
    holds = [document for document in made_town.town.ledger if document["kind"] == documents.RESERVATION]
    assert {hold["status"] for hold in holds} == {
        "HELD",
        "PARTIALLY_CAPTURED",
        "CAPTURED",
        "RELEASED",
        "EXPIRED",
    }
    assert any(hold.get("refunds") for hold in holds)
    assert any(hold.get("increments") for hold in holds)
    ratio = len(made_town.town.ledger) / len(made_town.town.wallets)
    assert abs(ratio - town.TOWN_RATIO) < 0.1


def test_every_copy_of_the_town_has_ids_of_its_own(made_town):
    """No two copies, nor a copy and the town, share a wallet, entry, hold, operation, event or claim
    id, an owner or a reference; and each copy refers to its own ids consistently."""
    original = made_town.town
    first, second = original.clone(1), original.clone(2)
    town_ids = _ids([*original.wallets, *original.ledger])
    first_ids, second_ids = _ids([*first[0], *first[1]]), _ids([*second[0], *second[1]])
    assert first_ids.isdisjoint(second_ids)
    assert first_ids.isdisjoint(town_ids)
    assert len(first_ids) == len(town_ids)  # remapped one to one
    wallets, ledger = first
    owners = {wallet["_id"]: wallet["ownerId"] for wallet in wallets}
    for document in ledger:
        if document["kind"] == documents.ENTRY and "walletId" in document:
            assert document["_id"] == f"{document['walletId']}:{document['sequence']}"
        if document["kind"] == documents.WALLET_CLAIM:
            assert document["_id"]["ownerId"] == owners[document["walletId"]]
        if document["kind"] == documents.OPERATION and document.get("idempotencyKey"):
            digest = hashlib.sha256(f"{document['ownerId']}\x00{document['idempotencyKey']}".encode()).hexdigest()
            assert document["_id"] == f"key:{digest}"
        if document["kind"] == documents.EVENT:
            assert document["sent"] is True
            assert document["sentAt"] > document["createdAt"]


def test_a_grown_database_reaches_its_counts_and_leaves_no_job_a_backlog(scaled):
    _, grown, measured = scaled
    growth = measured.growth
    assert growth.wallets >= TINY_WALLETS
    assert growth.documents >= TINY_DOCUMENTS
    assert growth.copies == max(
        math.ceil(TINY_WALLETS / growth.town_wallets), math.ceil(TINY_DOCUMENTS / growth.town_documents)
    )
    assert growth.wallets == growth.copies * growth.town_wallets
    checkpoints = grown[documents.LEDGER].count_documents({"kind": documents.CHECKPOINT})
    assert checkpoints == 3  # @funding, @payouts and @revenue in USD, each holding every copy's postings
    assert growth.documents == growth.copies * growth.town_documents + checkpoints
    cloned = {"ownerId": {"$regex": "^town-"}}
    assert grown[documents.LEDGER].count_documents({**cloned, "kind": documents.EVENT, "sent": False}) == 0
    open_holds = list(
        grown[documents.LEDGER].find(
            {**cloned, "kind": documents.RESERVATION, "status": {"$in": ["HELD", "PARTIALLY_CAPTURED"]}}
        )
    )
    assert len(open_holds) == 2 * growth.copies
    assert min(hold["expiresAt"] for hold in open_holds).replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(days=1)


def test_a_grown_database_passes_the_audit(scaled):
    """Every copy is a consistent piece of ledger: the audit finds nothing, and every reference
    points at a document of the grown database."""
    _, grown, _ = scaled
    audit = WalletService(grown).audit_ledger()
    assert audit.discrepancies == ()
    assert audit.wallets == grown[documents.WALLETS].count_documents({})
    ledger = grown[documents.LEDGER]
    wallet_ids = {wallet["_id"] for wallet in grown[documents.WALLETS].find({}, {"_id": 1})}
    hold_ids = {hold["_id"] for hold in ledger.find({"kind": documents.RESERVATION}, {"_id": 1})}
    operation_ids = {record["_id"] for record in ledger.find({"kind": documents.OPERATION}, {"_id": 1})}
    for document in ledger.find({"kind": {"$in": [documents.ENTRY, documents.RESERVATION, documents.EVENT]}}):
        for field in ("walletId", "counterpartyWalletId"):
            assert document.get(field, next(iter(wallet_ids))) in wallet_ids
        assert document.get("reservationId", next(iter(hold_ids))) in hold_ids
        if document["kind"] != documents.EVENT:  # a freeze's event has an operation id and no record
            assert document["operationId"] in operation_ids
    claims = list(ledger.find({"kind": documents.WALLET_CLAIM}))
    assert {claim["walletId"] for claim in claims} == wallet_ids


def test_the_five_operations_run_on_both_databases(scaled):
    near, grown, measured = scaled
    assert [row.operation for row in measured.rows] == list(scale.OPERATIONS)
    assert all(min(row.near_empty, row.grown, row.ratio) > 0 for row in measured.rows)
    assert measured.journal_entries == 1 + 4 * 15
    assert measured.rolled.postings > 0
    for database in (near, grown):
        riders = list(database[documents.WALLETS].find({"ownerId": {"$regex": "^scale-.*-rider$"}}))
        assert len(riders) == 1
        # Warm-up and 2 rounds of 2 calls, each a deposit of 100, or a hold of 100 of which 60 is captured.
        calls = scale.WARM_UP + 2 * 2
        assert riders[0]["balance"] == scale.RICH + calls * (scale.DEPOSIT - scale.CAPTURE)
        assert riders[0]["held"] == 0


def test_a_subject_reads_a_page_and_a_balance_mid_history(bench_service):
    subject = scale.Subject(bench_service, "subject", journal_cycles=20)
    assert subject.journal_entries == 81
    page = subject.calls["journal_page"]()
    assert [item.sequence for item in page.items] == list(range(81, 31, -1))
    balance = subject.calls["balance_at"]()
    assert balance.sequence == subject.middle_sequence == 1 + 4 * 10
    revenue = subject.calls["revenue_balance"]()
    assert revenue.balance == 20 * (scale.CAPTURE - scale.DRIVER_SHARE)


def _scale_run(ratios: dict[str, float]) -> report.Run:
    run = report.Run(header={"Date": "today"}, settings={}, server_counters=False, command="python -m benchmarks scale")
    growth = town.Growth(71, 474, 104, 2.0, 423, 290.0, 30_033, 200_502)
    rolled = scale.Rolled(postings=28_916, calls=4, seconds=164.4)
    run.scale.append(
        scale.Scale(
            30_000,
            200_000,
            growth,
            rolled,
            11,
            15,
            301,
            [
                scale.Row(operation, 200.0, 200.0 * ratio, ratio, (ratio - 0.05, ratio + 0.05))
                for operation, ratio in ratios.items()
            ],
        )
    )
    return run


def test_the_report_shows_the_ratios_and_flags_those_below_the_target():
    ratios = dict.fromkeys(scale.OPERATIONS, 1.0) | {"journal_page": 0.7, "balance_at": 0.797}
    rendered = report.render(_scale_run(ratios))
    assert rendered.startswith("# Wallet service benchmark (`python -m benchmarks scale`)")
    assert "## As the database grows" in rendered
    assert "### 30,033 wallets, 200,502 ledger documents" in rendered
    assert "Growing took 292 s" in rendered
    assert "| operation | near-empty ops/s | grown ops/s | grown / near-empty |" in rendered
    assert "| deposit | 200 | 200 | 1.00 |" in rendered
    assert f"| {scale.LABELS['journal_page']} | 200 | 140 | 0.70 (below 0.80) |" in rendered
    assert f"| {scale.LABELS['balance_at']} | 200 | 159 | 0.797 (below 0.80) |" in rendered
    assert "Below 0.80 of near-empty: journal_page, balance_at." in rendered
    assert "round-trip budget" not in rendered  # no round trips measured in this run
    assert "Every operation runs at 0.80 or more" in report.render(_scale_run(dict.fromkeys(scale.OPERATIONS, 0.9)))
    assert suite.SCALES[suite._parse(["--scale", "large"]).scale] == ("default", "large")
    assert suite.SCALES[suite._parse([]).scale] == ("default",)
