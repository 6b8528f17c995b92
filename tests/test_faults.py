"""Injected commit faults: the commit's outcome is hidden from the client, or the commit fails.

Every test wraps ClientSession.commit_transaction. An "applied" fault runs the real commit and
then raises, so the server kept the transaction while the client saw an error: the service's
retry must answer from the operation record it committed, never move the money a second time.
A "not applied" fault raises without committing (leaving the transaction block ends the session,
which aborts it): the retry must apply the operation exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import AutoReconnect, OperationFailure, PyMongoError

from tests.ledger_checks import assert_ledger_consistent, total_money
from wallet_core import (
    Conflict,
    DatabaseUnavailable,
    Movement,
    ReservationStatus,
    WalletService,
)
from wallet_core.store import (
    CODEC_OPTIONS,
    ENTRY,
    LEDGER,
    OPERATION,
    RESERVATION,
    WALLETS,
    reservation_from_document,
    utc_now_ms,
)

# ---------------------------------------------------------------- the fault injector


def unknown_commit_result() -> PyMongoError:
    """What pymongo raises when the connection drops during commitTransaction."""
    error = AutoReconnect("injected")
    error._add_error_label("UnknownTransactionCommitResult")
    return error


def embedded_write_conflict() -> PyMongoError:
    """mongoeco's own commit-time conflict, as it sends it without the wire layer: no code, no label."""
    return OperationFailure("Write conflict during transaction commit")


def transient_write_conflict() -> PyMongoError:
    """Real MongoDB's write conflict: code 112 with the TransientTransactionError label."""
    return OperationFailure(
        "WriteConflict error: this operation conflicted with another operation",
        code=112,
        details={"ok": 0, "code": 112, "codeName": "WriteConflict", "errorLabels": ["TransientTransactionError"]},
    )


@dataclass(frozen=True)
class Fault:
    applied: bool  # run the real commit before raising
    make: Callable[[], PyMongoError]


AFTER_UNKNOWN = Fault(applied=True, make=unknown_commit_result)
AFTER_WRITE_CONFLICT = Fault(applied=True, make=embedded_write_conflict)
BEFORE_TRANSIENT = Fault(applied=False, make=transient_write_conflict)
BEFORE_UNKNOWN = Fault(applied=False, make=unknown_commit_result)


@dataclass
class CommitFaults:
    """Plays `plan` against the next commits, one fault per commit; `forever` applies after the plan."""

    plan: list[Fault] = field(default_factory=list)
    forever: Fault | None = None
    commits: int = 0
    raised: list[PyMongoError] = field(default_factory=list)
    # Run just before the next real commit, e.g. another client's write.
    interference: list[Callable[[], None]] = field(default_factory=list)

    def next_commits(self, *faults: Fault) -> None:
        self.plan.extend(faults)

    def every_commit(self, fault: Fault) -> None:
        self.forever = fault

    def clear(self) -> None:
        self.plan.clear()
        self.forever = None


@pytest.fixture
def commit_faults(monkeypatch: pytest.MonkeyPatch) -> CommitFaults:
    """Commit faults injected in the client (conftest's `faults` are the wire layer's)."""
    injector = CommitFaults()
    real_commit = ClientSession.commit_transaction

    def commit_transaction(session: ClientSession) -> None:
        injector.commits += 1
        if injector.interference:
            injector.interference.pop(0)()
        fault = injector.plan.pop(0) if injector.plan else injector.forever
        if fault is None:
            real_commit(session)
            return
        if fault.applied:
            real_commit(session)
        error = fault.make()
        injector.raised.append(error)
        raise error

    monkeypatch.setattr(ClientSession, "commit_transaction", commit_transaction)
    return injector


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
        entries=ledger.count_documents({"kind": ENTRY}),
        reservations={str(hold["_id"]): hold["status"] for hold in ledger.find({"kind": RESERVATION})},
    )


def entry_ids_of(database: Database, operation_id: str) -> set[str]:
    return {str(entry["_id"]) for entry in database[LEDGER].find({"kind": ENTRY, "operationId": operation_id})}


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
        lambda service, c, key: service.deposit(c["wallet"], 250, idempotency_key=key),
        lambda c, _: {c["wallet"]: (1_250, 0)},
    ),
    "withdraw": Case(
        _one_wallet,
        lambda service, c, key: service.withdraw(c["wallet"], 300, idempotency_key=key),
        lambda c, _: {c["wallet"]: (700, 0)},
    ),
    # The retry's debit finds no money left: it must still answer from the record, not InsufficientFunds.
    "withdraw_everything": Case(
        _one_wallet,
        lambda service, c, key: service.withdraw(c["wallet"], 1_000, idempotency_key=key),
        lambda c, _: {c["wallet"]: (0, 0)},
    ),
    "create_reservation": Case(
        _one_wallet,
        lambda service, c, key: service.create_reservation(c["wallet"], 400, idempotency_key=key),
        lambda c, _: {c["wallet"]: (1_000, 400)},
        new_reservations=1,
    ),
    "capture_partial": Case(
        _wallet_with_hold,
        lambda service, c, key: service.capture_reservation(c["hold"], 150, idempotency_key=key),
        lambda c, _: {c["wallet"]: (850, 0)},
    ),
    "capture_full": Case(
        _wallet_with_hold,
        lambda service, c, key: service.capture_reservation(c["hold"], idempotency_key=key),
        lambda c, _: {c["wallet"]: (600, 0)},
    ),
    "release": Case(
        _wallet_with_hold,
        lambda service, c, key: service.release_reservation(c["hold"], idempotency_key=key),
        lambda c, _: {c["wallet"]: (1_000, 0)},
    ),
    "transfer": Case(
        _two_wallets,
        lambda service, c, key: service.transfer(c["wallet"], c["other"], 300, idempotency_key=key),
        lambda c, _: {c["wallet"]: (700, 0), c["other"]: (350, 0)},
    ),
    "create_wallet": Case(
        lambda service: {},
        lambda service, c, key: service.create_wallet("carol", "EUR", opening_balance=500, idempotency_key=key),
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
    "release": ["RELEASE"],
    "transfer": ["TRANSFER_OUT", "TRANSFER_IN"],
    "create_wallet": ["DEPOSIT"],
}

FAULT_PLANS = {
    # The commit applied, the client saw a connection error labelled UnknownTransactionCommitResult.
    "applied_unknown_result": [AFTER_UNKNOWN],
    # The commit applied, the client saw a bare "Write conflict" message (no code, no label).
    "applied_write_conflict": [AFTER_WRITE_CONFLICT],
    # The commit failed before applying anything; the retry commits.
    "not_applied_transient": [BEFORE_TRANSIENT],
    # Two failures that applied nothing, then a commit that applied but reported an unknown result.
    "twice_not_applied_then_applied_unknown": [BEFORE_TRANSIENT, BEFORE_UNKNOWN, AFTER_UNKNOWN],
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


@pytest.mark.parametrize("plan", FAULT_PLANS.values(), ids=FAULT_PLANS.keys())
@pytest.mark.parametrize("keyed", [True, False], ids=["with_key", "without_key"])
@pytest.mark.parametrize("name", CASES.keys())
def test_commit_fault_moves_money_once(
    service: WalletService, database: Database, commit_faults: CommitFaults, name: str, keyed: bool, plan: list[Fault]
) -> None:
    case = CASES[name]
    context = case.prepare(service)
    before = snapshot(database)
    key = f"fault-{name}" if keyed else None
    commits_before = commit_faults.commits

    commit_faults.next_commits(*plan)
    result = case.call(service, context, key)

    # Every planned fault fired, and nothing committed after the one commit that applied.
    assert commit_faults.plan == []
    assert len(commit_faults.raised) == len(plan)
    applied_faults = sum(fault.applied for fault in plan)
    assert commit_faults.commits - commits_before == len(plan) + (0 if applied_faults else 1)
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


@pytest.mark.parametrize("name", CASES.keys())
def test_another_clients_write_during_the_transaction_applies_it_once(
    service: WalletService, database: Database, commit_faults: CommitFaults, name: str
) -> None:
    """Someone else commits an unrelated write while the call's transaction is open.

    Real MongoDB commits the call as it is; the embedded server refuses the commit (it reports a
    conflict for any concurrent commit) without applying it, and the wire layer discards that
    failed transaction as MongoDB does. Either way the call applies once, and
    its answer is what the database holds. This is the single-threaded core of the races in
    test_concurrency.py: the retry must start a fresh transaction, not see the failed attempt's writes.
    """
    case = CASES[name]
    context = case.prepare(service)
    before = snapshot(database)
    commit_faults.interference.append(lambda: database["elsewhere"].insert_one({"unrelated": True}))

    result = case.call(service, context, f"interfered-{name}")

    assert commit_faults.interference == []
    assert result.replayed is False
    database.drop_collection("elsewhere")
    _check_applied_once(database, name, case, context, before, result)
    replay = case.call(service, context, f"interfered-{name}")
    assert replay.replayed is True
    assert same_result(replay, result)


# ---------------------------------------------------------------- the time budget


@pytest.mark.parametrize(
    ("make_error", "translated"),
    [
        (transient_write_conflict, Conflict),
        (embedded_write_conflict, Conflict),
        (unknown_commit_result, DatabaseUnavailable),
    ],
    ids=["transient_write_conflict", "plain_write_conflict", "connection_lost"],
)
@pytest.mark.parametrize("name", ["deposit", "transfer", "create_reservation"])
def test_time_budget_is_respected_when_every_commit_fails(
    service: WalletService,
    database: Database,
    commit_faults: CommitFaults,
    name: str,
    make_error: Callable[[], PyMongoError],
    translated: type[Exception],
) -> None:
    case = CASES[name]
    context = case.prepare(service)
    before = snapshot(database)
    impatient = WalletService(database, time_budget=0.5)

    commit_faults.every_commit(Fault(applied=False, make=make_error))
    with pytest.raises(translated) as raised:
        case.call(impatient, context, f"budget-{name}")
    commit_faults.clear()

    assert len(commit_faults.raised) >= 2, "the runner should have retried before giving up"
    # The last transient error is chained as it was raised by the driver.
    assert raised.value.__cause__ is commit_faults.raised[-1]
    assert snapshot(database) == before
    assert_ledger_consistent(database)

    # The failure is not recorded: the same key applies the call once the database recovers.
    result = case.call(service, context, f"budget-{name}")
    assert result.replayed is False
    _check_applied_once(database, name, case, context, before, result)


def test_non_transient_commit_error_is_not_retried(
    service: WalletService, database: Database, commit_faults: CommitFaults
) -> None:
    wallet = service.create_wallet("alice", "USD", opening_balance=100).wallet
    before = snapshot(database)
    commits_before = commit_faults.commits
    commit_faults.next_commits(Fault(applied=False, make=lambda: OperationFailure("injected failure", code=2)))
    with pytest.raises(OperationFailure, match="injected failure"):
        service.deposit(wallet.id, 10, idempotency_key="fails-for-good")
    assert commit_faults.commits == commits_before + 1
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


@pytest.mark.parametrize("fault", [AFTER_UNKNOWN, AFTER_WRITE_CONFLICT], ids=["unknown_result", "write_conflict"])
def test_expiry_batch_applied_but_reported_failed_expires_nothing_twice(
    service: WalletService, database: Database, commit_faults: CommitFaults, fault: Fault
) -> None:
    holds = _make_due_holds(service)
    money = total_money(database)
    later = utc_now_ms() + timedelta(hours=1)

    commit_faults.next_commits(fault)
    first = service.expire_reservations(now=later, batch_size=10)
    assert len(commit_faults.raised) == 1
    # The retry finds the batch's committed record and reports what that commit did.
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


def test_expiry_batch_not_applied_is_retried_once(
    service: WalletService, database: Database, commit_faults: CommitFaults
) -> None:
    holds = _make_due_holds(service)
    later = utc_now_ms() + timedelta(hours=1)

    commit_faults.next_commits(BEFORE_TRANSIENT, BEFORE_UNKNOWN)
    report = service.expire_reservations(now=later, batch_size=10)
    assert len(commit_faults.raised) == 2
    assert (report.expired, report.skipped, report.failed) == (len(holds), 0, 0)
    for hold_id in holds:
        assert len(_expire_entries(database, hold_id)) == 1
    assert service.expire_reservations(now=later).expired == 0
    assert_ledger_consistent(database)


def test_expiry_batch_that_keeps_failing_is_reported_failed_and_left_held(
    database: Database, service: WalletService, commit_faults: CommitFaults
) -> None:
    holds = _make_due_holds(service)
    before = snapshot(database)
    later = utc_now_ms() + timedelta(hours=1)
    impatient = WalletService(database, time_budget=0.3)

    commit_faults.every_commit(BEFORE_TRANSIENT)
    report = impatient.expire_reservations(now=later, batch_size=10)
    commit_faults.clear()
    assert (report.expired, report.skipped, report.failed) == (0, 0, len(holds))
    assert sorted(report.failed_reservation_ids) == sorted(holds)
    assert snapshot(database) == before

    # The next run picks them up.
    assert service.expire_reservations(now=later).expired == len(holds)
    assert all(status == ReservationStatus.EXPIRED for status in snapshot(database).reservations.values())
    assert_ledger_consistent(database)
