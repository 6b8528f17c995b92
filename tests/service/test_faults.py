"""Faults around the commit, injected by the database's own failCommand failpoint.

Each plan arms one failpoint on the service's connections (devtools/failpoints.py) and makes one
call. An "applied" fault lets the commit happen but hides its outcome from the client; the
service's retry must answer from the operation record it committed, never move the money a
second time. A "not applied" fault fails before the commit runs: the retry must apply the call
exactly once. The same tests run against a real mongod started with enableTestCommands=1.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pymongo
import pytest
from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import OperationFailure

from devtools.failpoints import FailPoints, Fault, drop_connection, slow, unknown_commit, write_conflict
from tests.conftest import CommandLog
from tests.ledger_checks import assert_ledger_consistent, total_money
from wallet_service import (
    Conflict,
    DatabaseUnavailable,
    InsufficientFunds,
    Movement,
    Request,
    ReservationStatus,
    WalletService,
)
from wallet_service.ledger.answers import reservation_from_document
from wallet_service.storage.documents import (
    CODEC_OPTIONS,
    ENTRY,
    LEDGER,
    OPERATION,
    RESERVATION,
    WALLETS,
    utc_now_ms,
)


@dataclass(frozen=True)
class Plan:
    """One failpoint, how often it fires, and what the client sees of each firing."""

    fault: Fault
    times: int
    applied: bool  # the commit the fault hit happened anyway

    def arm(self, failpoints: FailPoints) -> None:
        failpoints.arm(self.fault, times=self.times)


FAULT_PLANS = {
    # The commit applied; its answer carries a write concern error (UnknownTransactionCommitResult).
    "applied_unknown_result": Plan(unknown_commit(), times=1, applied=True),
    # The commit was refused before it ran (112, TransientTransactionError), three times; the fourth commits.
    "not_applied_transient": Plan(write_conflict("commitTransaction"), times=3, applied=False),
    # The connection closed before the commit ran, and again on pymongo's own retry of the commit:
    # outcome unknown, transaction left open on the server (the runner kills its session).
    "not_applied_connection_lost": Plan(drop_connection("commitTransaction"), times=2, applied=False),
    # The connection closed before the movement's insert: a network error inside the transaction.
    "connection_lost_before_insert": Plan(drop_connection("insert"), times=1, applied=False),
    # A write conflict at the first write (the wallet), as a concurrent movement causes, twice.
    "write_conflict_at_the_first_write": Plan(write_conflict("findAndModify", "insert"), times=2, applied=False),
}


# ---------------------------------------------------------------- ledger snapshots


@dataclass(frozen=True)
class Snapshot:
    wallets: dict[str, tuple[int, int, int]]  # id -> (balance, held, sequence)
    operations: int
    entries: int
    reservations: dict[str, str]  # id -> status


def snapshot(database: Database) -> Snapshot:
    database = database.with_options(codec_options=CODEC_OPTIONS)
    ledger = database[LEDGER]
    return Snapshot(
        wallets={
            str(wallet["_id"]): (wallet["balance"], wallet["held"], wallet["sequence"])
            for wallet in database[WALLETS].find()
        },
        operations=ledger.count_documents({"kind": OPERATION}),
        entries=ledger.count_documents({"kind": ENTRY, "walletId": {"$exists": True}}),  # a wallet's entries
        reservations={str(hold["_id"]): hold["status"] for hold in ledger.find({"kind": RESERVATION})},
    )


def entry_ids_of(database: Database, operation_id: str) -> set[str]:
    return {
        str(entry["_id"])
        for entry in database[LEDGER].find({"kind": ENTRY, "walletId": {"$exists": True}, "operationId": operation_id})
    }


def same_result(first: Movement, second: Movement) -> bool:
    return first.model_dump(exclude={"replayed"}) == second.model_dump(exclude={"replayed"})


# ---------------------------------------------------------------- one case per money-moving operation


@dataclass(frozen=True)
class Case:
    """`prepare` builds the state before the faulty call (without faults) and returns its context;
    `call` makes the call; `expect` maps wallet ids to (balance, held) after exactly one application."""

    prepare: Callable[[WalletService], dict]
    call: Callable[[WalletService, dict, str | None], Movement]
    expect: Callable[[dict, Movement], dict[str, tuple[int, int]]]
    new_reservations: int = 0


def _one_wallet(service: WalletService) -> dict:
    return {"wallet": service.create_wallet("alice", "USD", opening_balance=1_000).wallet.id}


def _wallet_with_hold(service: WalletService) -> dict:
    context = _one_wallet(service)
    context["hold"] = service.create_reservation(context["wallet"], 400).reservation.id
    return context


def _two_wallets(service: WalletService) -> dict:
    context = _one_wallet(service)
    context["other"] = service.create_wallet("bob", "USD", opening_balance=50).wallet.id
    return context


CASES = {
    "deposit": Case(
        _one_wallet,
        lambda service, c, key: service.deposit(c["wallet"], 250, Request(idempotency_key=key)),
        lambda c, _: {c["wallet"]: (1_250, 0)},
    ),
    "withdraw": Case(
        _one_wallet,
        lambda service, c, key: service.withdraw(c["wallet"], 300, Request(idempotency_key=key)),
        lambda c, _: {c["wallet"]: (700, 0)},
    ),
    # The retry's debit finds no money left: it must still answer from the record, not InsufficientFunds.
    "withdraw_everything": Case(
        _one_wallet,
        lambda service, c, key: service.withdraw(c["wallet"], 1_000, Request(idempotency_key=key)),
        lambda c, _: {c["wallet"]: (0, 0)},
    ),
    "create_reservation": Case(
        _one_wallet,
        lambda service, c, key: service.create_reservation(c["wallet"], 400, Request(idempotency_key=key)),
        lambda c, _: {c["wallet"]: (1_000, 400)},
        new_reservations=1,
    ),
    "capture_partial": Case(
        _wallet_with_hold,
        lambda service, c, key: service.capture_reservation(c["hold"], 150, Request(idempotency_key=key)),
        lambda c, _: {c["wallet"]: (850, 0)},
    ),
    "capture_full": Case(
        _wallet_with_hold,
        lambda service, c, key: service.capture_reservation(c["hold"], request=Request(idempotency_key=key)),
        lambda c, _: {c["wallet"]: (600, 0)},
    ),
    "capture_not_final": Case(
        _wallet_with_hold,
        lambda service, c, key: service.capture_reservation(c["hold"], 150, Request(idempotency_key=key), final=False),
        lambda c, _: {c["wallet"]: (850, 250)},
    ),
    "increment": Case(
        _wallet_with_hold,
        lambda service, c, key: service.increment_reservation(
            c["hold"], 200, Request(idempotency_key=key), ttl_seconds=3_600
        ),
        lambda c, _: {c["wallet"]: (1_000, 600)},
    ),
    "release": Case(
        _wallet_with_hold,
        lambda service, c, key: service.release_reservation(c["hold"], Request(idempotency_key=key)),
        lambda c, _: {c["wallet"]: (1_000, 0)},
    ),
    "transfer": Case(
        _two_wallets,
        lambda service, c, key: service.transfer(c["wallet"], c["other"], 300, Request(idempotency_key=key)),
        lambda c, _: {c["wallet"]: (700, 0), c["other"]: (350, 0)},
    ),
    "create_wallet": Case(
        lambda service: {},
        lambda service, c, key: service.create_wallet(
            "carol", "EUR", Request(idempotency_key=key), opening_balance=500
        ),
        lambda c, movement: {movement.wallet.id: (500, 0)},
    ),
}

EXPECTED_ENTRY_TYPES = {
    "deposit": ["DEPOSIT"],
    "withdraw": ["WITHDRAWAL"],
    "withdraw_everything": ["WITHDRAWAL"],
    "create_reservation": ["HOLD"],
    "capture_partial": ["CAPTURE", "RELEASE"],
    "capture_full": ["CAPTURE"],
    "capture_not_final": ["CAPTURE"],
    "increment": ["HOLD"],
    "release": ["RELEASE"],
    "transfer": ["TRANSFER_OUT", "TRANSFER_IN"],
    "create_wallet": ["DEPOSIT"],
}


def _check_applied_once(
    database: Database,
    name: str,
    case: Case,
    context: dict,
    before: Snapshot,
    result: Movement,
) -> None:
    after = snapshot(database)
    expected = case.expect(context, result)
    for wallet_id, (balance, held) in expected.items():
        assert after.wallets[wallet_id][:2] == (balance, held), (wallet_id, after.wallets[wallet_id])
    # The call's own figures are what the database holds: the money moved exactly once.
    assert (result.wallet.balance, result.wallet.held) == expected[result.wallet.id]
    if result.counterparty_wallet is not None:
        counterparty = result.counterparty_wallet
        assert (counterparty.balance, counterparty.held) == expected[counterparty.id]
    # Wallets not touched by the call are unchanged; no wallet was created twice.
    assert set(after.wallets) == set(before.wallets) | set(expected)
    for wallet_id, figures in before.wallets.items():
        if wallet_id not in expected:
            assert after.wallets[wallet_id] == figures
    # One operation record, one set of entries, and the entries are exactly the result's.
    assert after.operations == before.operations + 1
    assert database[LEDGER].count_documents({"_id": result.operation_id, "kind": OPERATION}) == 1
    assert [entry.type.value for entry in result.entries] == EXPECTED_ENTRY_TYPES[name]
    assert after.entries == before.entries + len(result.entries)
    assert entry_ids_of(database, result.operation_id) == {entry.id for entry in result.entries}
    assert len(after.reservations) == len(before.reservations) + case.new_reservations
    if result.reservation is not None:
        # The reservation in the answer is the one stored, in the state this call left it.
        stored = database.with_options(codec_options=CODEC_OPTIONS)[LEDGER].find_one(
            {"_id": ObjectId(result.reservation.id), "kind": RESERVATION}
        )
        assert stored is not None
        assert reservation_from_document(stored) == result.reservation
    assert_ledger_consistent(database)


def fired(commands: CommandLog, plan: Plan) -> int:
    """How many answers the plan's failpoint made, as the service's client saw them."""
    fault = plan.fault
    return sum(
        1
        for answer in commands.answers
        if answer.command in fault.commands
        and (
            (fault.close_connection and answer.network)
            or (fault.error_code is not None and answer.code == fault.error_code)
            or (fault.write_concern_error is not None and answer.code == fault.write_concern_error["code"])
        )
    )


@pytest.mark.parametrize("plan", FAULT_PLANS.values(), ids=FAULT_PLANS.keys())
@pytest.mark.parametrize("keyed", [True, False], ids=["with_key", "without_key"])
@pytest.mark.parametrize("name", CASES.keys())
def test_a_fault_moves_money_once(
    service: WalletService,
    database: Database,
    failpoints: FailPoints,
    service_commands: CommandLog,
    name: str,
    keyed: bool,
    plan: Plan,
) -> None:
    case = CASES[name]
    context = case.prepare(service)
    before = snapshot(database)
    key = f"fault-{name}" if keyed else None
    service_commands.clear()

    plan.arm(failpoints)
    result = case.call(service, context, key)
    failpoints.off()

    assert fired(service_commands, plan) == plan.times
    commits = service_commands.of("commitTransaction")
    clean_commits = [answer for answer in commits if answer.code is None and not answer.network]
    # Applied: the faulted commit was the one; its retry was answered from the record, with no commit.
    assert len(clean_commits) == (0 if plan.applied else 1)
    if plan.fault.close_connection:
        assert service_commands.of("killSessions"), "the runner kills the session a broken connection left"
    # It was this call's own commit, so the answer is not a replay.
    assert result.replayed is False
    _check_applied_once(database, name, case, context, before, result)

    if keyed:
        settled = snapshot(database)
        replay = case.call(service, context, key)
        assert replay.replayed is True
        assert same_result(replay, result)
        assert snapshot(database) == settled
        assert_ledger_consistent(database)


@pytest.mark.parametrize("name", ["deposit", "capture_partial", "transfer", "create_wallet"])
def test_a_commit_that_outlives_the_callers_timeout_applies_once(
    service: WalletService, database: Database, failpoints: FailPoints, service_commands: CommandLog, name: str
) -> None:
    """The server holds the commit past the caller's deadline. The caller is told the database was
    unavailable, and the runner kills the attempt's session outside the spent deadline (pymongo's
    abort had no time left): the held commit is ended, or stands had it run first. Either way the
    same key afterwards applies the call exactly once."""
    case = CASES[name]
    context = case.prepare(service)
    before = snapshot(database)
    failpoints.arm(slow(1_500, "commitTransaction"))
    service_commands.clear()
    with pytest.raises(DatabaseUnavailable), pymongo.timeout(0.5):
        case.call(service, context, f"late-{name}")
    failpoints.off()
    assert "killSessions" in [next(iter(command)) for command in service_commands.sent]

    result = case.call(service, context, f"late-{name}")
    _check_applied_once(database, name, case, context, before, result)


def test_racing_duplicates_of_one_request_apply_once(
    service: WalletService, database: Database, failpoints: FailPoints
) -> None:
    """Eight copies of one keyed request at once while every commit is slow: the copies collide on the
    wallet, the first commits, the others find its record (the wallet no longer covers a second
    withdrawal, so they must look before refusing). One movement, and every copy answers it."""
    wallet = service.create_wallet("alice", "USD", opening_balance=1_000).wallet.id
    failpoints.always(Fault(("commitTransaction",), block_ms=200))
    answers: list[Movement] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            answers.append(service.withdraw(wallet, 600, Request(idempotency_key="the-same-request")))
        except BaseException as error:  # every outcome is checked below
            errors.append(error)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failpoints.off()

    assert errors == []
    assert len({answer.operation_id for answer in answers}) == 1
    assert sum(not answer.replayed for answer in answers) == 1
    assert all(same_result(answer, answers[0]) for answer in answers)
    assert service.get_wallet(wallet).balance == 400
    assert database[LEDGER].count_documents({"kind": OPERATION, "operation": "withdraw"}) == 1
    assert_ledger_consistent(database)


@pytest.mark.parametrize("name", CASES.keys())
def test_another_clients_write_during_the_transaction_applies_it_once(
    service: WalletService, database: Database, service_commands: CommandLog, name: str
) -> None:
    """Someone else commits an unrelated write while the call's transaction is open, just before its
    commit: writes to other documents never conflict, so the call commits as it is, once."""
    case = CASES[name]
    context = case.prepare(service)
    before = snapshot(database)
    service_commands.clear()
    service_commands.before["commitTransaction"] = [lambda: database["elsewhere"].insert_one({"unrelated": True})]

    result = case.call(service, context, f"interfered-{name}")

    assert service_commands.before["commitTransaction"] == []
    assert [answer.code for answer in service_commands.of("commitTransaction")] == [None]
    assert result.replayed is False
    database.drop_collection("elsewhere")
    _check_applied_once(database, name, case, context, before, result)
    replay = case.call(service, context, f"interfered-{name}")
    assert replay.replayed is True
    assert same_result(replay, result)


WRITES = ("insert", "update", "delete", "findAndModify")


@pytest.mark.parametrize("name", [*CASES.keys(), "expire_reservations"])
def test_money_moves_only_inside_a_transaction_with_its_operation_record(
    service: WalletService, service_commands: CommandLog, name: str
) -> None:
    """No money-moving write is a plain retryable write: the server may apply two concurrent retries
    of one such write twice (SecantusDB does; MongoDB does not promise otherwise once the first
    outlived the client's timeout). Every write of a movement is part of its transaction, whose
    operation record makes a second application fail on its _id."""
    if name == "expire_reservations":
        _make_due_holds(service)
        service_commands.clear()
        assert service.expire_reservations(now=utc_now_ms() + timedelta(hours=1)).expired == 3
    else:
        case = CASES[name]
        context = case.prepare(service)
        service_commands.clear()
        case.call(service, context, f"inside-{name}")
    writes = [command for command in service_commands.sent if next(iter(command)) in WRITES]
    assert writes
    for command in writes:
        assert command.get("autocommit") is False, command
        assert "txnNumber" in command, command
    inserts = [command for command in writes if "insert" in command and command["insert"] == LEDGER]
    assert any(document.get("kind") == OPERATION for command in inserts for document in command["documents"])


# ---------------------------------------------------------------- the time budget


@pytest.mark.parametrize(
    ("fault", "translated"),
    [
        (write_conflict("commitTransaction"), (Conflict,)),
        # The last attempt may end on the connection or on a conflict with an attempt whose session the
        # runner had no time left to kill: either way the caller is told to retry with the same key.
        (drop_connection("commitTransaction"), (DatabaseUnavailable, Conflict)),
    ],
    ids=["write_conflict", "connection_lost"],
)
@pytest.mark.parametrize("name", ["deposit", "transfer", "create_reservation"])
def test_time_budget_is_respected_when_every_commit_fails(
    service: WalletService,
    service_database: Database,
    database: Database,
    failpoints: FailPoints,
    service_commands: CommandLog,
    name: str,
    fault: Fault,
    translated: tuple[type[Exception], ...],
) -> None:
    case = CASES[name]
    context = case.prepare(service)
    before = snapshot(database)
    impatient = WalletService(service_database, time_budget=0.5)
    service_commands.clear()

    failpoints.always(fault)
    with pytest.raises(translated) as raised:
        case.call(impatient, context, f"budget-{name}")
    failpoints.off()

    assert len(service_commands.of("commitTransaction")) >= 2, "the runner should have retried before giving up"
    # The last error is chained as the driver raised it.
    assert isinstance(raised.value.__cause__, pymongo.errors.PyMongoError)
    if fault.error_code is not None:
        assert isinstance(raised.value.__cause__, OperationFailure)
        assert raised.value.__cause__.code == fault.error_code
    assert snapshot(database) == before
    assert_ledger_consistent(database)

    # The failure is not recorded: the same key applies the call once the database recovers.
    result = case.call(service, context, f"budget-{name}")
    assert result.replayed is False
    _check_applied_once(database, name, case, context, before, result)


def test_non_transient_commit_error_is_not_retried(
    service: WalletService, database: Database, failpoints: FailPoints, service_commands: CommandLog
) -> None:
    wallet = service.create_wallet("alice", "USD", opening_balance=100).wallet
    before = snapshot(database)
    service_commands.clear()
    failpoints.arm(Fault(("commitTransaction",), error_code=2))  # BadValue: nothing a retry fixes
    with pytest.raises(OperationFailure) as raised:
        service.deposit(wallet.id, 10, Request(idempotency_key="fails-for-good"))
    failpoints.off()
    assert raised.value.code == 2
    assert len(service_commands.of("commitTransaction")) == 1
    assert snapshot(database) == before


# ---------------------------------------------------------------- expiry


def _make_due_holds(service: WalletService) -> list[str]:
    first = service.create_wallet("alice", "USD", opening_balance=1_000).wallet.id
    second = service.create_wallet("bob", "USD", opening_balance=1_000).wallet.id
    holds = [
        service.create_reservation(wallet, amount).reservation.id for wallet, amount in ((first, 100), (first, 200))
    ]
    holds.append(service.create_reservation(second, 300).reservation.id)
    return holds


def _expire_entries(database: Database, hold_id: str) -> list[dict]:
    return list(database[LEDGER].find({"kind": ENTRY, "type": "EXPIRE", "reservationId": ObjectId(hold_id)}))


def test_expiry_batch_applied_but_reported_failed_expires_nothing_twice(
    service: WalletService, database: Database, failpoints: FailPoints, service_commands: CommandLog
) -> None:
    holds = _make_due_holds(service)
    money = total_money(database)
    later = utc_now_ms() + timedelta(hours=1)
    service_commands.clear()

    failpoints.arm(unknown_commit())
    first = service.expire_reservations(now=later, batch_size=10)
    failpoints.off()
    # The retry's transaction finds the batch's committed record, writes nothing and reports what
    # that commit did.
    assert [answer.code for answer in service_commands.of("commitTransaction")] == [64, None]
    assert (first.expired, first.skipped, first.failed) == (len(holds), 0, 0)
    for hold_id in holds:
        assert service.get_reservation(hold_id).status is ReservationStatus.EXPIRED
        assert len(_expire_entries(database, hold_id)) == 1
    settled = snapshot(database)
    assert all(held == 0 for _, held, _ in settled.wallets.values())

    second = service.expire_reservations(now=later, batch_size=10)
    assert (second.expired, second.skipped, second.failed) == (0, 0, 0)
    assert snapshot(database) == settled
    assert total_money(database) == money
    # The batch's EXPIRE entries: one per hold, all from one transaction.
    entries = list(database[LEDGER].find({"kind": ENTRY, "type": "EXPIRE"}))
    assert len(entries) == len(holds)
    assert len({entry["operationId"] for entry in entries}) == 1
    assert_ledger_consistent(database)


@pytest.mark.parametrize(
    "plan", [FAULT_PLANS["not_applied_transient"], FAULT_PLANS["not_applied_connection_lost"]], ids=["112", "network"]
)
def test_expiry_batch_not_applied_is_retried_once(
    service: WalletService, database: Database, failpoints: FailPoints, service_commands: CommandLog, plan: Plan
) -> None:
    holds = _make_due_holds(service)
    later = utc_now_ms() + timedelta(hours=1)
    service_commands.clear()

    plan.arm(failpoints)
    report = service.expire_reservations(now=later, batch_size=10)
    failpoints.off()
    assert fired(service_commands, plan) == plan.times
    assert (report.expired, report.skipped, report.failed) == (len(holds), 0, 0)
    for hold_id in holds:
        assert len(_expire_entries(database, hold_id)) == 1
    assert service.expire_reservations(now=later).expired == 0
    assert_ledger_consistent(database)


def test_expiry_batch_that_keeps_failing_is_reported_failed_and_left_held(
    database: Database, service_database: Database, service: WalletService, failpoints: FailPoints
) -> None:
    holds = _make_due_holds(service)
    before = snapshot(database)
    later = utc_now_ms() + timedelta(hours=1)
    impatient = WalletService(service_database, time_budget=0.3)

    failpoints.always(write_conflict("commitTransaction"))
    report = impatient.expire_reservations(now=later, batch_size=10)
    failpoints.off()
    assert (report.expired, report.skipped, report.failed) == (0, 0, len(holds))
    assert sorted(report.failed_reservation_ids) == sorted(holds)
    assert snapshot(database) == before

    # The next run picks them up.
    assert service.expire_reservations(now=later).expired == len(holds)
    assert all(status == ReservationStatus.EXPIRED for status in snapshot(database).reservations.values())
    assert_ledger_consistent(database)


# ---------------------------------------------------------------- every database call behind the boundary

READS = {
    "get_wallet": lambda service, c: service.get_wallet(c["wallet"]),
    "list_transactions": lambda service, c: service.list_transactions(c["wallet"]),
    "list_reservations": lambda service, c: service.list_reservations(c["wallet"]),
    "get_reservation": lambda service, c: service.get_reservation(c["hold"]),
    "freeze_wallet": lambda service, c: service.freeze_wallet(c["wallet"]),
    "expire_reservations": lambda service, c: service.expire_reservations(),
    "increment_reservation": lambda service, c: service.increment_reservation(c["hold"], 10),
    "ping": lambda service, c: service.ping(),
    "ensure_indexes": lambda service, c: service.ensure_indexes(),
    # The second wallet in a currency: the refusal reads the first one's id after the transaction.
    "create_wallet_exists": lambda service, c: service.create_wallet("alice", "USD"),
}


@pytest.mark.parametrize("name", READS.keys())
def test_a_lost_connection_on_any_call_is_database_unavailable(
    service: WalletService, service_database: Database, database: Database, failpoints: FailPoints, name: str
) -> None:
    """Every database call the service makes, transactions and plain reads alike, goes through the
    one place that names database errors: a lost connection is DatabaseUnavailable (a 503), never
    a driver error (a 500). (The commands fail for good: pymongo retries a read or write once.)"""
    context = _wallet_with_hold(service)
    before = snapshot(database)
    commands = ("find", "findAndModify", "update", "insert", "ping", "createIndexes", "aggregate")
    if name == "create_wallet_exists":
        commands = ("find",)  # the transaction itself commits nothing; the read after it fails
    failpoints.always(drop_connection(*commands))
    with pytest.raises(DatabaseUnavailable):
        READS[name](WalletService(service_database, time_budget=0.5), context)
    failpoints.off()
    assert snapshot(database) == before


def test_keeping_a_refusal_rides_out_write_conflicts(service, database, failpoints):
    """A keyed refusal is kept under its key in a transaction of its own, retried like any other:
    three write conflicts on its insert, and it is still kept, and answered again from there."""
    wallet = service.create_wallet("alice", "USD", opening_balance=100).wallet.id
    failpoints.arm(write_conflict("insert"), times=3)
    with pytest.raises(InsufficientFunds):
        service.withdraw(wallet, 500, Request(idempotency_key="declined"))
    failpoints.off()
    assert database[LEDGER].count_documents({"kind": OPERATION, "refusal": {"$exists": True}}) == 1
    service.deposit(wallet, 1_000)
    with pytest.raises(InsufficientFunds, match="has 100 available"):  # the refusal as first given
        service.withdraw(wallet, 500, Request(idempotency_key="declined"))
