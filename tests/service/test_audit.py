"""The audit job: a clean ledger passes, and each kind of corruption planted straight in the
database is found and named."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bson import Int64, ObjectId

from wallet_service import WalletService
from wallet_service.documents import ENTRY, LEDGER, RESERVATION, WALLETS


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


@pytest.mark.parametrize("kind", sorted(PLANTS))
def test_each_planted_corruption_is_found(service, database, busy, kind):
    PLANTS[kind](database, busy)
    report = service.audit_ledger()
    assert kind in {found.kind for found in report.discrepancies}, report.discrepancies
    if kind == "ledger_imbalance":
        assert report.ledger_imbalances == 1
        assert [found.subject for found in report.discrepancies if found.kind == kind] == ["EUR"]
    else:
        assert report.wallet_mismatches >= 1


def test_refunded_more_than_captured_and_a_held_amount_without_its_hold_are_found(service, database, busy):
    database[LEDGER].update_one({"_id": ObjectId(busy["ride"])}, {"$set": {"refundedAmount": Int64(1_300)}})
    database[LEDGER].update_one(
        {"_id": ObjectId(busy["open_hold"])}, {"$set": {"status": "RELEASED", "releasedAmount": Int64(400)}}
    )
    report = service.audit_ledger()
    details = [found.detail for found in report.discrepancies]
    assert any("refunded 1300 > captured 1200" in detail for detail in details), details
    assert any("its open holds hold 0" in detail for detail in details), details
