"""The audit job: a clean ledger passes, and each kind of corruption planted straight in the
database is found and named, among the recent entries (read in the audit's short transaction) and
among the settled ones (read outside it); movements committing while it runs are no discrepancy; and
its transactions stay the same size however large the ledger grows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from bson import Int64, ObjectId

from tests.service.transaction_sizes import TransactionLog, logged_service
from wallet_service import WalletService
from wallet_service.ledger.limits import SETTLED_SECONDS
from wallet_service.storage.documents import ENTRY, LEDGER, RESERVATION, WALLETS
from wallet_service.use_cases import audit, ledger_sums

AGES = ("recent", "settled")


@pytest.fixture
def auditor(service: WalletService, service_database) -> Callable[[str], WalletService]:
    """The service as it audits entries of an age: "recent" now, "settled" with its clock an hour on."""

    def of(age: str) -> WalletService:
        if age == "recent":
            return service
        return WalletService(service_database, clock=lambda: datetime.now(UTC) + timedelta(hours=1))

    return of


@pytest.fixture
def busy(service: WalletService) -> dict[str, str]:
    """Deposits, a withdrawal, a transfer, a split capture, a refund, a release and an open hold."""
    rider = service.create_wallet("rider", "USD", opening_balance=5_000).wallet.id
    driver = service.create_wallet("driver", "USD").wallet.id
    euros = service.create_wallet("rider", "EUR", opening_balance=900).wallet.id
    service.deposit(rider, 1_000)
    service.withdraw(rider, 300)
    service.transfer(rider, driver, 200)
    ride = service.create_reservation(rider, 1_500).reservation.id
    service.capture_reservation(
        ride, 1_200, splits=[{"walletId": driver, "amount": 1_000}, {"account": "@revenue", "amount": 200}]
    )
    service.refund_reservation(ride, 120)
    service.release_reservation(service.create_reservation(rider, 50).reservation.id)
    open_hold = service.create_reservation(rider, 400).reservation.id
    return {"rider": rider, "driver": driver, "euros": euros, "open_hold": open_hold, "ride": ride}


def test_a_clean_ledger_passes(service, busy):
    report = service.audit_ledger(batch_size=2)  # batches of two wallets: three batches
    assert report.discrepancies == ()
    assert (report.wallets, report.currencies) == (3, ("EUR", "USD"))
    assert report.entries > 0
    assert report.holds == 3
    assert (report.ledger_imbalances, report.wallet_mismatches) == (0, 0)


def _entry(database, wallet: str, sequence: int) -> dict:
    return database[LEDGER].find_one({"_id": f"{wallet}:{sequence}"})


PLANTS: dict[str, Callable] = {
    # A posting changed after the fact: the currency no longer sums to zero (and the wallet's chain breaks).
    "ledger_imbalance": lambda db, ids: db[LEDGER].update_one(
        {"kind": ENTRY, "account": "@funding", "currency": "EUR"},
        {"$inc": {"balanceDelta": Int64(-1), "amount": Int64(1)}},
    ),
    # A wallet's balance edited without an entry.
    "wallet_mismatch": lambda db, ids: db[WALLETS].update_one(
        {"_id": ObjectId(ids["driver"])}, {"$inc": {"balance": Int64(5)}}
    ),
    # An entry lost from the middle of a journal.
    "broken_chain": lambda db, ids: db[LEDGER].delete_one({"_id": f"{ids['driver']}:1"}),
    # A hold whose figures no longer add up.
    "hold_mismatch": lambda db, ids: db[LEDGER].update_one(
        {"_id": ObjectId(ids["ride"]), "kind": RESERVATION}, {"$set": {"releasedAmount": Int64(1)}}
    ),
}


def _lose_the_last_update(database, wallet: str) -> None:
    """The wallet as it was before its last movement, whose entry stays: an update lost."""
    last = database[LEDGER].find_one({"walletId": ObjectId(wallet), "kind": ENTRY}, sort=[("sequence", -1)])
    undone = {"balance": -last["balanceDelta"], "held": -last["heldDelta"], "sequence": -1}
    database[WALLETS].update_one({"_id": ObjectId(wallet)}, {"$inc": {k: Int64(v) for k, v in undone.items()}})


@pytest.mark.parametrize("age", AGES)
@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_each_planted_corruption_is_found(auditor, database, busy, kind, age):
    PLANTS[kind](database, busy)
    report = auditor(age).audit_ledger()
    assert kind in {found.kind for found in report.discrepancies}, report.discrepancies
    if kind == "ledger_imbalance":
        assert report.ledger_imbalances == 1
        assert [found.subject for found in report.discrepancies if found.kind == kind] == ["EUR"]
    else:
        assert report.wallet_mismatches >= 1


@pytest.mark.parametrize("age", AGES)
def test_an_entry_no_wallet_update_accounts_for_is_found(auditor, database, busy, age):
    _lose_the_last_update(database, busy["driver"])
    found = [(found.kind, found.subject) for found in auditor(age).audit_ledger().discrepancies]
    assert found == [("wallet_mismatch", busy["driver"])]


def test_refunded_more_than_captured_and_a_held_amount_without_its_hold_are_found(service, database, busy):
    database[LEDGER].update_one({"_id": ObjectId(busy["ride"])}, {"$set": {"refundedAmount": Int64(1_300)}})
    database[LEDGER].update_one(
        {"_id": ObjectId(busy["open_hold"])}, {"$set": {"status": "RELEASED", "releasedAmount": Int64(400)}}
    )
    report = service.audit_ledger()
    details = [found.detail for found in report.discrepancies]
    assert any("refunded 1300 > captured 1200" in detail for detail in details), details
    assert any("its open holds hold 0" in detail for detail in details), details


@pytest.mark.parametrize("age", AGES)
def test_an_imbalance_is_found_among_recent_and_among_settled_entries(timed, database, clock, age):
    """A ledger of both ages: the planted posting is settled (summed outside the transaction) or
    recent (in it), and found either way."""
    wallet = timed.create_wallet("rider", "USD", opening_balance=500).wallet.id
    timed.deposit(wallet, 100)
    clock[0] += timedelta(hours=1)
    timed.deposit(wallet, 40)
    assert timed.audit_ledger().discrepancies == ()
    cutoff = clock[0] - timedelta(seconds=SETTLED_SECONDS)
    time = {"$gte": cutoff} if age == "recent" else {"$lt": cutoff}
    planted = database[LEDGER].update_one(
        {"kind": ENTRY, "account": "@funding", "createdAt": time}, {"$inc": {"balanceDelta": Int64(-1)}}
    )
    assert planted.modified_count == 1
    found = [(found.kind, found.subject, found.detail) for found in timed.audit_ledger().discrepancies]
    assert found == [("ledger_imbalance", "USD", "postings in USD sum to -1")]


def test_movements_committing_while_the_audit_reads_are_no_discrepancy(timed, database, clock, monkeypatch):
    """Between the short transaction and the read of the settled entries: a ride, the rolls of every
    tail, and the first roll of an account from before checkpoints (its postings join its tail and
    its checkpoint is made). Between a batch's transaction and its wallets' history: a deposit, a hold
    placed, the open hold captured, the closed one refunded."""
    rider = timed.create_wallet("rider", "USD", opening_balance=100_000).wallet.id
    driver = timed.create_wallet("driver", "USD").wallet.id
    timed.open_account("@tips", "USD")

    def splits(revenue: int) -> list[dict]:
        return [{"walletId": driver, "amount": 700}, {"account": "@revenue", "amount": revenue}]

    ride = timed.create_reservation(rider, 1_000).reservation.id
    timed.capture_reservation(ride, 1_000, splits=[*splits(200), {"account": "@tips", "amount": 100}])
    database[LEDGER].update_many({"account": "@tips"}, {"$unset": {"tail": ""}})  # as written before checkpoints
    timed.roll_checkpoints()  # @funding and @revenue; @tips has no tail to find
    pending = timed.create_reservation(rider, 2_000, ttl_seconds=7 * 24 * 3600).reservation.id
    clock[0] += timedelta(hours=1)  # all of it settled
    assert timed.audit_ledger().discrepancies == ()

    def meanwhile_settled(original):
        def read(db, cutoff):
            later = timed.create_reservation(rider, 1_000).reservation.id
            timed.capture_reservation(later, 1_000, splits=splits(300))
            timed.roll_checkpoints()
            assert timed.get_account("@tips", "USD").balance == 100  # its first roll: the checkpoint made
            return original(db, cutoff)

        return read

    calls = []

    def meanwhile_history(original):
        def read(db, wallet):
            if not calls:
                timed.deposit(rider, 50)
                timed.create_reservation(rider, 30)
                timed.capture_reservation(pending, 2_000, splits=splits(1_300))
                timed.refund_reservation(ride, 100)
            calls.append(wallet["_id"])
            return original(db, wallet)

        return read

    monkeypatch.setattr(ledger_sums, "settled_rows", meanwhile_settled(ledger_sums.settled_rows))
    monkeypatch.setattr(audit, "wallet_history", meanwhile_history(audit.wallet_history))
    during = timed.audit_ledger()
    assert during.discrepancies == ()
    assert (during.wallets, during.checkpoints, len(calls)) == (2, 2, 2)  # @tips had no checkpoint at the snapshot
    monkeypatch.undo()
    after = timed.audit_ledger()
    assert after.discrepancies == ()
    assert (after.checkpoints, after.holds) == (3, 4)
    assert after.entries > during.entries


@pytest.fixture
def logged(mongo_uri, database, clock) -> Iterator[tuple[WalletService, TransactionLog]]:
    with logged_service(mongo_uri, database.name, clock) as logged:
        yield logged


def test_the_audits_largest_transaction_does_not_grow_with_the_ledger(logged, database, clock):
    """The same two wallets, an open hold, and a ledger four times as long: every entry settled and
    every tail rolled, as the schedule keeps them, the audit's largest transaction touches as many
    documents, while it still checks every entry."""
    service, log = logged
    rider = service.create_wallet("rider", "USD", opening_balance=10**9).wallet.id
    driver = service.create_wallet("driver", "USD").wallet.id
    service.create_reservation(rider, 500, ttl_seconds=7 * 24 * 3600)
    splits = [{"walletId": driver, "amount": 70}, {"account": "@revenue", "amount": 30}]
    largest, entries = [], []
    for rides in (10, 30):
        for _ in range(rides):
            service.capture_reservation(service.create_reservation(rider, 100).reservation.id, splits=splits)
            service.deposit(driver, 5)
        clock[0] += timedelta(hours=1)
        service.roll_checkpoints()
        log.clear()
        report = service.audit_ledger()
        assert report.discrepancies == ()
        largest.append(log.largest(database))
        entries.append(report.entries)
    # The rider's opening and open hold, and per ride a hold, a capture, the driver's share and a deposit.
    assert entries == [2 + 10 * 4, 2 + 40 * 4]
    assert entries[-1] == database[LEDGER].count_documents({"kind": ENTRY, "walletId": {"$exists": True}})
    assert largest[0] == largest[1] > 0
