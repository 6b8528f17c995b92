"""Holds: create, read, list, capture (full and partial), release, and their refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.ledger_checks import assert_ledger_consistent, snapshot
from wallet_service import (
    EntryType,
    IdempotencyKeyMismatch,
    InsufficientFunds,
    InvalidState,
    NotFound,
    Request,
    ReservationStatus,
    ValidationFailed,
    WalletService,
)

MISSING_ID = "0123456789abcdef01234567"


@pytest.fixture
def wallet_id(service: WalletService) -> str:
    return service.create_wallet("rider", "USD", opening_balance=10_000).wallet.id


def test_hold_reduces_available_not_balance(service, database, wallet_id):
    held = service.create_reservation(
        wallet_id,
        3_000,
        Request(reference_type="ride", reference_id="ride-1", metadata={"city": "Oslo"}),
        ttl_seconds=600,
    )
    reservation = held.reservation
    assert (reservation.amount, reservation.status, reservation.captured_amount, reservation.released_amount) == (
        3_000,
        ReservationStatus.HELD,
        0,
        0,
    )
    assert (reservation.reference_type, reservation.reference_id, reservation.metadata) == (
        "ride",
        "ride-1",
        {"city": "Oslo"},
    )
    assert reservation.expires_at - reservation.created_at == timedelta(seconds=600)
    (entry,) = held.entries
    assert (entry.type, entry.balance_delta, entry.held_delta, entry.reservation_id) == (
        EntryType.HOLD,
        0,
        3_000,
        reservation.id,
    )
    assert (held.wallet.balance, held.wallet.held, held.wallet.available) == (10_000, 3_000, 7_000)
    assert service.get_reservation(reservation.id) == reservation
    assert_ledger_consistent(database)


def test_default_ttl_is_thirty_minutes(service, wallet_id):
    reservation = service.create_reservation(wallet_id, 1).reservation
    assert reservation.expires_at - reservation.created_at == timedelta(minutes=30)


def test_hold_more_than_available_changes_nothing(service, database, wallet_id):
    service.create_reservation(wallet_id, 6_000)
    before = snapshot(database)
    with pytest.raises(InsufficientFunds):
        service.create_reservation(wallet_id, 4_001)
    assert snapshot(database) == before


def test_full_capture(service, database, wallet_id):
    reservation = service.create_reservation(wallet_id, 2_000).reservation
    captured = service.capture_reservation(reservation.id)
    (entry,) = captured.entries
    assert (entry.type, entry.amount, entry.balance_delta, entry.held_delta) == (
        EntryType.CAPTURE,
        2_000,
        -2_000,
        -2_000,
    )
    assert (
        captured.reservation.status,
        captured.reservation.captured_amount,
        captured.reservation.released_amount,
    ) == (
        ReservationStatus.CAPTURED,
        2_000,
        0,
    )
    assert (captured.wallet.balance, captured.wallet.held) == (8_000, 0)
    assert_ledger_consistent(database)


def test_partial_capture_releases_the_rest_in_the_same_transaction(service, database, wallet_id):
    reservation = service.create_reservation(wallet_id, 2_000).reservation
    captured = service.capture_reservation(reservation.id, 1_250, Request(reference_id="fare-7"))
    capture, release = captured.entries
    assert (capture.type, capture.amount, capture.balance_after, capture.held_after) == (
        EntryType.CAPTURE,
        1_250,
        8_750,
        750,
    )
    assert (release.type, release.amount, release.balance_after, release.held_after) == (
        EntryType.RELEASE,
        750,
        8_750,
        0,
    )
    assert release.sequence == capture.sequence + 1
    assert (captured.reservation.captured_amount, captured.reservation.released_amount) == (1_250, 750)
    assert service.get_reservation(reservation.id).status is ReservationStatus.CAPTURED
    assert service.get_wallet(wallet_id).available == 8_750
    assert_ledger_consistent(database)


def test_release(service, database, wallet_id):
    reservation = service.create_reservation(wallet_id, 500).reservation
    released = service.release_reservation(reservation.id, Request(metadata={"reason": "ride cancelled"}))
    (entry,) = released.entries
    assert (entry.type, entry.amount, entry.held_delta, entry.metadata) == (
        EntryType.RELEASE,
        500,
        -500,
        {"reason": "ride cancelled"},
    )
    assert (released.reservation.status, released.reservation.released_amount) == (ReservationStatus.RELEASED, 500)
    assert (released.wallet.balance, released.wallet.held) == (10_000, 0)
    assert_ledger_consistent(database)


def test_terminal_reservations_never_change_again(service, database, wallet_id):
    captured = service.create_reservation(wallet_id, 100).reservation.id
    released = service.create_reservation(wallet_id, 100).reservation.id
    service.capture_reservation(captured)
    service.release_reservation(released)
    before = snapshot(database)
    for call in (
        lambda: service.capture_reservation(captured),
        lambda: service.release_reservation(captured),
        lambda: service.capture_reservation(released),
        lambda: service.release_reservation(released),
    ):
        with pytest.raises(InvalidState):
            call()
    assert snapshot(database) == before


def test_capture_more_than_held_is_refused(service, database, wallet_id):
    reservation = service.create_reservation(wallet_id, 100).reservation
    before = snapshot(database)
    with pytest.raises(ValidationFailed) as refused:
        service.capture_reservation(reservation.id, 101)
    assert refused.value.errors[0].field == "amount"
    assert snapshot(database) == before


def test_an_expired_hold_cannot_be_captured_but_can_be_released(database, wallet_id, service):
    now = [datetime.now(UTC).replace(microsecond=0)]
    timed = WalletService(database, clock=lambda: now[0])
    first = timed.create_reservation(wallet_id, 100, ttl_seconds=60).reservation
    second = timed.create_reservation(wallet_id, 100, ttl_seconds=60).reservation
    now[0] += timedelta(seconds=60)
    before = snapshot(database)
    with pytest.raises(InvalidState, match="expired"):
        timed.capture_reservation(first.id)
    assert snapshot(database) == before
    assert timed.release_reservation(second.id).reservation.status is ReservationStatus.RELEASED
    assert_ledger_consistent(database)


def test_unknown_reservation(service, database, wallet_id):
    before = snapshot(database)
    for call in (
        lambda: service.get_reservation(MISSING_ID),
        lambda: service.capture_reservation(MISSING_ID),
        lambda: service.release_reservation(MISSING_ID),
    ):
        with pytest.raises(NotFound):
            call()
    assert snapshot(database) == before


def test_another_owners_reservation_is_not_found(service, database, wallet_id):
    reservation = service.create_reservation(wallet_id, 100).reservation
    before = snapshot(database)
    for call in (
        lambda: service.get_reservation(reservation.id, owner_id="mallory"),
        lambda: service.capture_reservation(reservation.id, request=Request(owner_id="mallory")),
        lambda: service.release_reservation(reservation.id, Request(owner_id="mallory")),
    ):
        with pytest.raises(NotFound):
            call()
    assert snapshot(database) == before
    assert (
        service.capture_reservation(reservation.id, request=Request(owner_id="rider")).reservation.status
        is ReservationStatus.CAPTURED
    )


def test_retried_capture_of_a_captured_hold_replays(service, database, wallet_id):
    reservation = service.create_reservation(wallet_id, 900, Request(idempotency_key="hold-1")).reservation
    first = service.capture_reservation(reservation.id, 400, Request(idempotency_key="cap-1"))
    again = service.capture_reservation(reservation.id, 400, Request(idempotency_key="cap-1"))
    assert again.replayed
    assert again.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
    with pytest.raises(IdempotencyKeyMismatch):
        service.capture_reservation(reservation.id, 500, Request(idempotency_key="cap-1"))
    replayed_hold = service.create_reservation(wallet_id, 900, Request(idempotency_key="hold-1"))
    assert replayed_hold.replayed
    assert replayed_hold.reservation.status is ReservationStatus.HELD  # the result as first committed
    assert service.get_wallet(wallet_id).balance == 9_600
    assert_ledger_consistent(database)


def test_retried_release_replays(service, wallet_id):
    reservation = service.create_reservation(wallet_id, 900).reservation
    first = service.release_reservation(reservation.id, Request(idempotency_key="rel-1"))
    again = service.release_reservation(reservation.id, Request(idempotency_key="rel-1"))
    assert again.replayed
    assert again.entries == first.entries


def test_frozen_wallet_may_still_settle_existing_holds(service, database, wallet_id):
    capture_me = service.create_reservation(wallet_id, 300).reservation.id
    release_me = service.create_reservation(wallet_id, 300).reservation.id
    service.freeze_wallet(wallet_id)
    assert service.capture_reservation(capture_me).wallet.balance == 9_700
    assert service.release_reservation(release_me).wallet.held == 0
    assert_ledger_consistent(database)


def test_list_reservations_by_status_with_keyset_pages(service, wallet_id):
    ids = [service.create_reservation(wallet_id, 10 + index).reservation.id for index in range(7)]
    service.capture_reservation(ids[0])
    service.release_reservation(ids[1])
    held = service.list_reservations(wallet_id, status="HELD", limit=3)
    assert [item.id for item in held.items] == ids[:1:-1][:3]
    second = service.list_reservations(wallet_id, status="HELD", limit=3, cursor=held.next_cursor)
    assert [item.id for item in second.items] == ids[:1:-1][3:]
    assert second.next_cursor is None
    everything = service.list_reservations(wallet_id, limit=200)
    assert [item.id for item in everything.items] == ids[::-1]
    assert [item.id for item in service.list_reservations(wallet_id, status="CAPTURED").items] == [ids[0]]
    with pytest.raises(ValidationFailed):  # a cursor of one listing is not valid for another
        service.list_reservations(wallet_id, status="CAPTURED", cursor=held.next_cursor)
    with pytest.raises(ValidationFailed):
        service.list_reservations(wallet_id, status="PENDING")
