"""Holds that follow a ride: raised while open (increments), captured in parts (`final`), and
captured or released at expiry as the hold says (`onExpiry`, `captureTo`)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.ledger_checks import assert_ledger_consistent, platform_balances, snapshot
from wallet_service import (
    EntryType,
    InsufficientFunds,
    InvalidState,
    NotFound,
    OnExpiry,
    Request,
    ReservationStatus,
    ValidationFailed,
    WalletFrozen,
    WalletService,
)
from wallet_service.ledger.limits import MAX_INCREMENTS


@pytest.fixture
def rider(timed: WalletService) -> str:
    return timed.create_wallet("rider", "USD", opening_balance=10_000).wallet.id


@pytest.fixture
def driver(timed: WalletService) -> str:
    return timed.create_wallet("driver", "USD").wallet.id


def test_a_hold_is_raised_for_a_detour(timed, database, rider, clock):
    hold = timed.create_reservation(rider, 1_500, Request(reference_id="ride_42"), ttl_seconds=600).reservation
    clock[0] += timedelta(seconds=60)
    raised = timed.increment_reservation(
        hold.id, 400, Request(idempotency_key="detour", reference_id="toll"), ttl_seconds=900
    )
    (entry,) = raised.entries
    assert (entry.type, entry.amount, entry.held_delta, entry.balance_delta) == (EntryType.HOLD, 400, 400, 0)
    assert (entry.reservation_id, entry.reference_id) == (hold.id, "toll")
    assert (raised.wallet.held, raised.wallet.available) == (1_900, 8_100)
    after = raised.reservation
    assert (after.status, after.amount, after.held_amount) == (ReservationStatus.HELD, 1_900, 1_900)
    assert after.expires_at == clock[0] + timedelta(seconds=900)  # pushed out from now
    (increment,) = after.increments
    assert (increment.amount, increment.expires_at, increment.created_at) == (400, after.expires_at, clock[0])
    # A shorter ttl never brings the expiry in.
    again = timed.increment_reservation(hold.id, 100, ttl_seconds=1).reservation
    assert again.expires_at == after.expires_at
    assert timed.get_reservation(hold.id) == again
    assert_ledger_consistent(database)


def test_a_replayed_increment_answers_the_original_whatever_the_state_now(timed, database, rider):
    hold = timed.create_reservation(rider, 1_000).reservation.id
    first = timed.increment_reservation(hold, 250, Request(idempotency_key="raise-1"))
    timed.capture_reservation(hold)
    replayed = timed.increment_reservation(hold, 250, Request(idempotency_key="raise-1"))
    assert replayed.replayed
    assert replayed == first.model_copy(update={"replayed": True})
    assert replayed.reservation.status is ReservationStatus.HELD  # as first committed
    assert timed.get_reservation(hold).amount == 1_250  # raised once
    assert_ledger_consistent(database)


def test_refused_increments_change_nothing(timed, database, rider, clock):
    hold = timed.create_reservation(rider, 9_000, ttl_seconds=60).reservation.id
    before = snapshot(database)
    with pytest.raises(InsufficientFunds) as short:
        timed.increment_reservation(hold, 1_001)
    assert (short.value.available, short.value.requested) == (1_000, 1_001)
    with pytest.raises(NotFound):
        timed.increment_reservation(hold, 1, Request(owner_id="someone-else"))
    with pytest.raises(ValidationFailed) as bad:
        timed.increment_reservation("not-an-id", 0, ttl_seconds=0)
    assert {error.field for error in bad.value.errors} == {"reservationId", "amount", "ttlSeconds"}
    clock[0] += timedelta(seconds=60)  # expired, not swept yet
    with pytest.raises(InvalidState, match="expired"):
        timed.increment_reservation(hold, 1)
    assert snapshot(database) == before


def test_a_hold_is_raised_ten_times_at_most(timed, database, rider):
    hold = timed.create_reservation(rider, 100).reservation.id
    for _ in range(MAX_INCREMENTS):
        timed.increment_reservation(hold, 10)
    before = snapshot(database)
    with pytest.raises(InvalidState, match=f"raised {MAX_INCREMENTS} times"):
        timed.increment_reservation(hold, 10)
    assert snapshot(database) == before
    reservation = timed.get_reservation(hold)
    assert (reservation.amount, len(reservation.increments)) == (100 + 10 * MAX_INCREMENTS, MAX_INCREMENTS)
    assert_ledger_consistent(database)


def test_an_increment_never_takes_a_hold_past_seven_days(timed, database, rider, clock):
    hold = timed.create_reservation(rider, 100, ttl_seconds=6 * 24 * 3_600 + 60).reservation
    clock[0] += timedelta(days=6)
    timed.increment_reservation(hold.id, 10, ttl_seconds=24 * 3_600)  # exactly 7 days after it was placed
    before = snapshot(database)
    with pytest.raises(ValidationFailed) as refused:
        timed.increment_reservation(hold.id, 10, ttl_seconds=24 * 3_600 + 1)
    assert refused.value.errors[0].field == "ttlSeconds"
    assert snapshot(database) == before
    assert timed.get_reservation(hold.id).expires_at == hold.created_at + timedelta(days=7)


def test_closed_holds_and_frozen_wallets_cannot_be_raised(timed, database, rider):
    captured = timed.create_reservation(rider, 100).reservation.id
    released = timed.create_reservation(rider, 100).reservation.id
    open_hold = timed.create_reservation(rider, 100).reservation.id
    timed.capture_reservation(captured)
    timed.release_reservation(released)
    timed.freeze_wallet(rider)
    before = snapshot(database)
    for hold, status in ((captured, "CAPTURED"), (released, "RELEASED")):
        with pytest.raises(InvalidState, match=f"already {status}"):
            timed.increment_reservation(hold, 1)
    with pytest.raises(WalletFrozen):
        timed.increment_reservation(open_hold, 1)
    assert snapshot(database) == before


def test_a_hold_is_captured_in_parts(timed, database, rider, driver):
    hold = timed.create_reservation(rider, 2_000).reservation.id
    first = timed.capture_reservation(hold, 500, final=False, splits=[{"walletId": driver, "amount": 500}])
    rows = [(entry.wallet_id, entry.type, entry.amount) for entry in first.entries]
    assert rows == [(rider, EntryType.CAPTURE, 500), (driver, EntryType.CAPTURE_IN, 500)]
    assert (first.wallet.balance, first.wallet.held) == (9_500, 1_500)
    part = first.reservation
    assert (part.status, part.captured_amount, part.released_amount, part.held_amount) == (
        ReservationStatus.PARTIALLY_CAPTURED,
        500,
        0,
        1_500,
    )
    timed.increment_reservation(hold, 300)  # a partly captured hold is still open
    second = timed.capture_reservation(hold, 700, final=False)
    assert second.reservation.status is ReservationStatus.PARTIALLY_CAPTURED
    assert [(entry.account, entry.amount) for entry in second.account_entries] == [("@revenue", 700)]
    last = timed.capture_reservation(hold, 600, splits=[{"walletId": driver, "amount": 600}])
    done = last.reservation
    assert (done.status, done.amount, done.captured_amount, done.released_amount, done.held_amount) == (
        ReservationStatus.CAPTURED,
        2_300,
        1_800,
        500,
        0,
    )
    assert [(capture.amount, capture.final) for capture in done.captures] == [(500, False), (700, False), (600, True)]
    assert len({capture.id for capture in done.captures}) == 3
    assert [(entry.type, entry.amount) for entry in last.entries] == [
        (EntryType.CAPTURE, 600),
        (EntryType.RELEASE, 500),
        (EntryType.CAPTURE_IN, 600),  # the driver's
    ]
    assert (last.wallet.balance, last.wallet.held) == (8_200, 0)
    assert timed.get_wallet(driver).balance == 1_100
    assert platform_balances(database)[("@revenue", "USD")] == 700
    assert_ledger_consistent(database)


def test_a_partial_capture_that_uses_the_hold_up_ends_it(timed, database, rider):
    hold = timed.create_reservation(rider, 300).reservation.id
    moved = timed.capture_reservation(hold, 300, final=False)
    assert (moved.reservation.status, moved.reservation.released_amount) == (ReservationStatus.CAPTURED, 0)
    assert moved.reservation.captures[0].final is True
    assert [entry.type for entry in moved.entries] == [EntryType.CAPTURE]
    with pytest.raises(InvalidState, match="already CAPTURED"):
        timed.capture_reservation(hold, 1, final=False)
    assert_ledger_consistent(database)


def test_a_final_capture_without_an_amount_takes_what_is_still_held(timed, database, rider):
    hold = timed.create_reservation(rider, 1_000).reservation.id
    timed.capture_reservation(hold, 400, final=False)
    moved = timed.capture_reservation(hold, splits=[{"account": "@revenue", "amount": 600}])
    assert (moved.reservation.captured_amount, moved.reservation.released_amount) == (1_000, 0)
    assert [(entry.type, entry.amount) for entry in moved.entries] == [(EntryType.CAPTURE, 600)]
    assert_ledger_consistent(database)


def test_refused_partial_captures_change_nothing(timed, database, rider, clock):
    hold = timed.create_reservation(rider, 1_000, ttl_seconds=60).reservation.id
    timed.capture_reservation(hold, 600, final=False)
    before = snapshot(database)
    with pytest.raises(ValidationFailed) as too_much:
        timed.capture_reservation(hold, 401, final=False)
    assert too_much.value.errors[0].field == "amount"
    assert "400" in too_much.value.errors[0].message
    with pytest.raises(ValidationFailed) as no_amount:
        timed.capture_reservation(hold, final=False)
    assert no_amount.value.errors[0].field == "amount"
    with pytest.raises(ValidationFailed) as not_all:
        timed.capture_reservation(hold, splits=[{"account": "@revenue", "amount": 500}])
    assert not_all.value.errors[0].field == "splits"
    with pytest.raises(ValidationFailed):
        timed.capture_reservation(hold, 10, final="no")
    clock[0] += timedelta(seconds=60)
    with pytest.raises(InvalidState, match="expired"):
        timed.capture_reservation(hold, 10, final=False)
    assert snapshot(database) == before


def test_a_partly_captured_hold_is_released_and_expires_with_its_captures_kept(timed, database, rider, clock):
    released = timed.create_reservation(rider, 1_000, ttl_seconds=60).reservation.id
    expiring = timed.create_reservation(rider, 1_000, ttl_seconds=60).reservation.id
    timed.capture_reservation(released, 300, final=False)
    timed.capture_reservation(expiring, 200, final=False)
    moved = timed.release_reservation(released)
    assert [(entry.type, entry.amount) for entry in moved.entries] == [(EntryType.RELEASE, 700)]
    assert (moved.reservation.status, moved.reservation.captured_amount, moved.reservation.released_amount) == (
        ReservationStatus.RELEASED,
        300,
        700,
    )
    clock[0] += timedelta(seconds=61)
    assert timed.expire_reservations().expired == 1
    gone = timed.get_reservation(expiring)
    assert (gone.status, gone.captured_amount, gone.released_amount) == (ReservationStatus.EXPIRED, 200, 800)
    assert [entry.amount for entry in timed.list_transactions(rider, entry_type="EXPIRE").items] == [800]
    assert timed.get_wallet(rider).held == 0
    assert_ledger_consistent(database)


def test_a_hold_placed_to_capture_at_expiry_is_captured_by_the_job(timed, database, rider, driver, clock):
    fee = timed.create_reservation(rider, 500, ttl_seconds=60, on_expiry="capture").reservation
    fare = timed.create_reservation(
        rider, 2_000, ttl_seconds=60, on_expiry="capture", capture_to={"walletId": driver}
    ).reservation
    assert (fee.on_expiry, fee.capture_to.account) == (OnExpiry.CAPTURE, "@revenue")  # the default, named
    assert fare.capture_to.wallet_id == driver
    timed.capture_reservation(fare.id, 1_500, final=False, splits=[{"walletId": driver, "amount": 1_500}])
    timed.increment_reservation(fare.id, 100)
    clock[0] += timedelta(seconds=61)
    report = timed.expire_reservations()
    assert (report.expired, report.skipped, report.failed) == (2, 0, 0)
    fee_after, fare_after = timed.get_reservation(fee.id), timed.get_reservation(fare.id)
    assert (fee_after.status, fee_after.captured_amount, fee_after.released_amount) == (
        ReservationStatus.EXPIRED,
        500,
        0,
    )
    assert [(split.account, split.amount) for split in fee_after.captures[0].splits] == [("@revenue", 500)]
    assert (fare_after.status, fare_after.captured_amount, fare_after.held_amount) == (
        ReservationStatus.EXPIRED,
        2_100,
        0,
    )
    assert [capture.amount for capture in fare_after.captures] == [1_500, 600]
    assert timed.get_wallet(driver).balance == 2_100
    assert (timed.get_wallet(rider).balance, timed.get_wallet(rider).held) == (10_000 - 2_600, 0)
    assert platform_balances(database)[("@revenue", "USD")] == 500
    incoming = timed.list_transactions(driver, entry_type="CAPTURE_IN").items
    assert sorted(entry.amount for entry in incoming) == [600, 1_500]
    assert timed.expire_reservations().expired == 0  # once
    assert timed.audit_ledger().discrepancies == ()
    assert_ledger_consistent(database)


def test_a_hold_paying_another_whose_holds_expire_in_the_same_batch(timed, database, rider, driver, clock):
    """Two wallets each capture to the other at expiry: one batch, one update per wallet."""
    timed.deposit(driver, 1_000)
    timed.create_reservation(rider, 300, ttl_seconds=60, on_expiry="capture", capture_to={"walletId": driver})
    timed.create_reservation(driver, 200, ttl_seconds=60, on_expiry="capture", capture_to={"walletId": rider})
    clock[0] += timedelta(seconds=61)
    assert timed.expire_reservations().expired == 2
    assert timed.get_wallet(rider).balance == 10_000 - 300 + 200
    assert timed.get_wallet(driver).balance == 1_000 - 200 + 300
    assert_ledger_consistent(database)


def test_where_an_expiry_capture_goes_is_checked_when_the_hold_is_placed(timed, database, rider):
    euro = timed.create_wallet("driver", "EUR").wallet.id
    before = snapshot(database)
    for capture_to, on_expiry, field in (
        ({"walletId": euro}, "capture", "captureTo.walletId"),  # another currency
        ({"walletId": rider}, "capture", "captureTo.walletId"),  # the hold's own wallet
        ({"account": "@tips"}, "capture", "captureTo.account"),  # not open
        ({"account": "@revenue"}, "release", "captureTo"),  # only for a capture
        ({"account": "@revenue", "walletId": rider}, "capture", "captureTo"),
        (None, "keep", "onExpiry"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            timed.create_reservation(rider, 100, on_expiry=on_expiry, capture_to=capture_to)
        assert refused.value.errors[0].field == field, capture_to
    assert snapshot(database) == before


def test_a_refund_takes_back_from_the_newest_capture_first(timed, database, rider, driver):
    hold = timed.create_reservation(rider, 2_000).reservation.id
    first = timed.capture_reservation(hold, 1_000, final=False, splits=[{"walletId": driver, "amount": 1_000}])
    split = [{"walletId": driver, "amount": 300}, {"account": "@revenue", "amount": 100}]
    second = timed.capture_reservation(hold, 400, final=False, splits=split)
    refund = timed.refund_reservation(hold, 500).reservation.refunds[0]  # a refund of an open hold
    by_capture = [(source.capture_id, source.wallet_id, source.account, source.amount) for source in refund.sources]
    second_id, first_id = second.reservation.captures[1].id, first.reservation.captures[0].id
    assert by_capture == [
        (second_id, driver, None, 300),
        (second_id, None, "@revenue", 100),
        (first_id, driver, None, 100),
    ]
    assert timed.get_wallet(driver).balance == 1_300 - 400  # one entry per destination, not per capture
    moved = timed.refund_reservation(hold, 900)
    assert [(source.capture_id, source.amount) for source in moved.reservation.refunds[1].sources] == [(first_id, 900)]
    with pytest.raises(InvalidState, match="has 0 left to refund"):
        timed.refund_reservation(hold, 1)
    assert_ledger_consistent(database)


def test_a_named_refund_source_takes_from_the_newest_capture_that_paid_it(timed, database, rider, driver):
    hold = timed.create_reservation(rider, 1_000).reservation.id
    timed.capture_reservation(hold, 300, final=False, splits=[{"walletId": driver, "amount": 300}])
    split = [{"walletId": driver, "amount": 200}, {"account": "@revenue", "amount": 100}]
    timed.capture_reservation(hold, 300, final=False, splits=split)
    refund = timed.refund_reservation(hold, 400, sources=[{"walletId": driver, "amount": 400}]).reservation.refunds[0]
    assert [source.amount for source in refund.sources] == [200, 200]
    with pytest.raises(ValidationFailed) as refused:  # 200 still refundable, but only 100 from the driver
        timed.refund_reservation(hold, 101, sources=[{"walletId": driver, "amount": 101}])
    assert refused.value.errors[0].field == "from[0].amount"
    assert_ledger_consistent(database)


def test_a_hold_that_captured_nothing_has_nothing_to_refund(timed, rider):
    hold = timed.create_reservation(rider, 100).reservation.id
    with pytest.raises(InvalidState, match="nothing was captured"):
        timed.refund_reservation(hold, 1)
