"""The reservation-expiry job: exactly once per hold, batched, and honest about what it could not do."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from bson import Int64, ObjectId

from tests.ledger_checks import assert_ledger_consistent
from tests.service.transaction_sizes import logged_service
from wallet_service import EntryType, ReservationStatus, ValidationFailed
from wallet_service.ledger.limits import MAX_EXPIRY_BATCH
from wallet_service.storage.documents import ENTRY, LEDGER, WALLETS


def test_due_holds_expire_and_release_their_money(timed, database, clock):
    wallets = [timed.create_wallet(f"owner-{index}", "USD", opening_balance=1_000).wallet.id for index in range(3)]
    due = [
        timed.create_reservation(wallet, 100 + index, ttl_seconds=60).reservation.id
        for index, wallet in enumerate(wallets * 2)
    ]
    later = timed.create_reservation(wallets[0], 50, ttl_seconds=3_600).reservation.id
    clock[0] += timedelta(seconds=61)
    report = timed.expire_reservations(batch_size=4)
    assert (report.expired, report.skipped, report.failed) == (6, 0, 0)
    for reservation_id in due:
        reservation = timed.get_reservation(reservation_id)
        assert reservation.status is ReservationStatus.EXPIRED
        assert reservation.released_amount == reservation.amount
    assert timed.get_reservation(later).status is ReservationStatus.HELD
    assert timed.get_wallet(wallets[0]).held == 50
    expiries = timed.list_transactions(wallets[1], entry_type="EXPIRE").items
    assert sorted(entry.amount for entry in expiries) == [101, 104]
    assert all(entry.type is EntryType.EXPIRE and entry.held_delta == -entry.amount for entry in expiries)
    # Two batches, each its operation: what the expiry function publishes by.
    assert len(set(report.operation_ids)) == 2
    operations = database[LEDGER].distinct("operationId", {"kind": ENTRY, "type": "EXPIRE"})
    assert set(operations) == set(report.operation_ids)
    assert_ledger_consistent(database)
    again = timed.expire_reservations()
    assert (again.expired, again.operation_ids) == (0, ())  # nothing twice


def test_expiry_uses_the_given_cutoff(timed, clock):
    wallet = timed.create_wallet("o", "USD", opening_balance=100).wallet.id
    hold = timed.create_reservation(wallet, 10, ttl_seconds=60).reservation
    assert timed.expire_reservations(now=hold.expires_at - timedelta(milliseconds=1)).expired == 0
    assert timed.expire_reservations(now=hold.expires_at).expired == 1


def test_settled_holds_are_not_expired(timed, database, clock):
    wallet = timed.create_wallet("o", "USD", opening_balance=100).wallet.id
    captured = timed.create_reservation(wallet, 10, ttl_seconds=60).reservation.id
    released = timed.create_reservation(wallet, 10, ttl_seconds=60).reservation.id
    timed.capture_reservation(captured)
    timed.release_reservation(released)
    clock[0] += timedelta(hours=1)
    assert timed.expire_reservations().expired == 0
    assert timed.get_reservation(captured).status is ReservationStatus.CAPTURED
    assert_ledger_consistent(database)


def test_a_hold_whose_wallet_holds_too_little_is_skipped_not_marked(timed, database, clock):
    healthy = timed.create_wallet("a", "USD", opening_balance=100).wallet.id
    broken = timed.create_wallet("b", "USD", opening_balance=100).wallet.id
    ok_hold = timed.create_reservation(healthy, 10, ttl_seconds=60).reservation.id
    bad_hold = timed.create_reservation(broken, 10, ttl_seconds=60).reservation.id
    database[WALLETS].update_one({"_id": ObjectId(broken)}, {"$set": {"held": Int64(5)}})  # corrupt on purpose
    clock[0] += timedelta(seconds=61)
    report = timed.expire_reservations()
    assert (report.expired, report.skipped, report.failed) == (1, 1, 0)
    assert report.skipped_reservation_ids == (bad_hold,)
    assert timed.get_reservation(bad_hold).status is ReservationStatus.HELD  # never EXPIRED without its money
    assert timed.get_wallet(broken).held == 5
    assert timed.get_reservation(ok_hold).status is ReservationStatus.EXPIRED
    assert timed.expire_reservations().skipped == 1  # reported again next run, never looped on


def test_a_hold_whose_wallet_is_gone_is_skipped(timed, database, clock):
    wallet = timed.create_wallet("a", "USD", opening_balance=100).wallet.id
    hold = timed.create_reservation(wallet, 10, ttl_seconds=60).reservation.id
    database[WALLETS].delete_one({"_id": ObjectId(wallet)})
    clock[0] += timedelta(seconds=61)
    report = timed.expire_reservations()
    assert (report.expired, report.skipped) == (0, 1)
    assert database[LEDGER].find_one({"_id": ObjectId(hold)})["status"] == "HELD"


def test_a_hold_whose_payee_wallet_is_gone_is_skipped_with_its_wallets_holds(timed, database, clock):
    """A capture to a missing wallet skips every hold of the payer's wallet; one to an account needs no wallet."""
    payer = timed.create_wallet("rider", "USD", opening_balance=1_000).wallet.id
    payee = timed.create_wallet("driver", "USD").wallet.id
    other = timed.create_wallet("other", "USD", opening_balance=1_000).wallet.id
    to_gone = timed.create_reservation(
        payer, 100, ttl_seconds=60, on_expiry="capture", capture_to={"walletId": payee}
    ).reservation.id
    beside_it = timed.create_reservation(payer, 50, ttl_seconds=60).reservation.id
    to_account = timed.create_reservation(other, 70, ttl_seconds=60, on_expiry="capture").reservation.id
    database[WALLETS].delete_one({"_id": ObjectId(payee)})
    clock[0] += timedelta(seconds=61)
    report = timed.expire_reservations()
    assert (report.expired, report.skipped) == (1, 2)
    assert set(report.skipped_reservation_ids) == {to_gone, beside_it}
    assert timed.get_reservation(to_account).status is ReservationStatus.EXPIRED
    assert timed.get_wallet(payer).held == 150


def test_many_holds_on_one_wallet_in_one_batch(timed, database, clock):
    wallet = timed.create_wallet("a", "USD", opening_balance=10_000).wallet.id
    for _ in range(30):
        timed.create_reservation(wallet, 7, ttl_seconds=60)
    clock[0] += timedelta(seconds=61)
    assert timed.expire_reservations(batch_size=MAX_EXPIRY_BATCH).expired == 30
    assert timed.get_wallet(wallet).held == 0
    assert_ledger_consistent(database)


def test_a_batch_transaction_grows_with_its_holds_not_with_the_ledger(mongo_uri, database, clock):
    """At the largest batch size, the same number of due holds on a new ledger, then on one with a
    history (entries, closed holds, holds not due, other wallets): the transaction touches as many
    documents, at most 5 a hold (it read and returned, ended, its entry; its wallet's read, update and
    event), so a batch of MAX_EXPIRY_BATCH holds is bounded whatever the ledger's size."""
    holds, per_hold = 40, 5
    with logged_service(mongo_uri, database.name, clock) as (service, log):
        wallets = [service.create_wallet(f"rider-{n}", "USD", opening_balance=10**6).wallet.id for n in range(4)]
        largest = []
        for history in (0, 10):
            for number in range(history):
                for wallet in wallets:
                    service.deposit(wallet, 10)
                    service.release_reservation(service.create_reservation(wallet, 10).reservation.id)
                    service.create_reservation(wallet, 10, ttl_seconds=7 * 24 * 3600)  # not due
                service.create_wallet(f"other-{number}", "USD", opening_balance=1)
            for number in range(holds):
                service.create_reservation(wallets[number % len(wallets)], 10, ttl_seconds=60)
            clock[0] += timedelta(seconds=61)
            log.clear()
            assert service.expire_reservations(batch_size=MAX_EXPIRY_BATCH).expired == holds
            largest.append(log.largest(database))
    assert largest[0] == largest[1]
    assert 0 < largest[0] <= per_hold * holds


@pytest.mark.parametrize(
    ("now", "batch_size"), [(datetime(2030, 1, 1), 10), (None, 0), (None, MAX_EXPIRY_BATCH + 1), ("2030-01-01", 10)]
)
def test_bad_arguments(service, now, batch_size):
    with pytest.raises(ValidationFailed):
        service.expire_reservations(now=now, batch_size=batch_size)
