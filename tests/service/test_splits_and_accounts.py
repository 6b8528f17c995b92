"""Split captures (a rider's hold pays a driver's wallet and platform accounts in one transaction)
and platform accounts (balances as sums of postings, their journals, opening new ones)."""

from __future__ import annotations

import pytest
from bson import Int64, ObjectId

from tests.ledger_checks import assert_ledger_consistent, platform_balances, snapshot
from wallet_service import (
    AccountExists,
    BalanceOverflow,
    EntryType,
    NotFound,
    Request,
    ValidationFailed,
    WalletService,
)
from wallet_service.ledger.limits import MAX_INT64


@pytest.fixture
def ride(service: WalletService) -> dict[str, str]:
    """A rider with 5,000 and a hold of 2,000 on it, and a driver with an empty wallet."""
    rider = service.create_wallet("rider", "USD", opening_balance=5_000).wallet.id
    driver = service.create_wallet("driver", "USD").wallet.id
    hold = service.create_reservation(rider, 2_000, Request(reference_type="ride", reference_id="r-1")).reservation.id
    return {"rider": rider, "driver": driver, "hold": hold}


def test_a_capture_pays_the_driver_and_the_platform_in_one_transaction(service, database, ride):
    service.open_account("@tips", "USD")
    splits = [
        {"walletId": ride["driver"], "amount": 1_200},
        {"account": "@revenue", "amount": 300},
        {"account": "@tips", "amount": 100},
    ]
    moved = service.capture_reservation(ride["hold"], 1_600, Request(idempotency_key="fare-r-1"), splits=splits)
    assert (moved.wallet.balance, moved.wallet.held) == (3_400, 0)
    assert service.get_wallet(ride["driver"]).balance == 1_200
    rider_side = [(entry.wallet_id, entry.type, entry.amount) for entry in moved.entries]
    assert rider_side == [
        (ride["rider"], EntryType.CAPTURE, 1_600),
        (ride["rider"], EntryType.RELEASE, 400),
        (ride["driver"], EntryType.CAPTURE_IN, 1_200),
    ]
    driver_entry = moved.entries[-1]
    assert (driver_entry.counterparty_wallet_id, driver_entry.reservation_id) == (ride["rider"], ride["hold"])
    assert [(entry.account, entry.amount) for entry in moved.account_entries] == [("@revenue", 300), ("@tips", 100)]
    (capture,) = moved.reservation.captures
    assert capture.amount == 1_600
    assert [(split.wallet_id, split.account, split.amount) for split in capture.splits] == [
        (ride["driver"], None, 1_200),
        (None, "@revenue", 300),
        (None, "@tips", 100),
    ]
    assert service.get_reservation(ride["hold"]).captures == moved.reservation.captures
    balances = platform_balances(database)
    assert (balances[("@revenue", "USD")], balances[("@tips", "USD")]) == (300, 100)
    again = service.capture_reservation(ride["hold"], 1_600, Request(idempotency_key="fare-r-1"), splits=splits)
    assert again.replayed
    assert again.model_dump() == moved.model_dump()
    assert_ledger_consistent(database)


def test_the_payer_does_not_see_the_payees_balances(service, ride):
    splits = [{"walletId": ride["driver"], "amount": 2_000}]
    moved = service.capture_reservation(ride["hold"], splits=splits, request=Request(owner_id="rider"))
    assert [entry.wallet_id for entry in moved.entries] == [ride["rider"]]
    assert moved.reservation.captures[0].splits[0].wallet_id == ride["driver"]  # where it went, not what it holds


def test_a_capture_without_splits_goes_to_revenue(service, database, ride):
    moved = service.capture_reservation(ride["hold"], 500)
    assert [(entry.account, entry.type, entry.amount) for entry in moved.account_entries] == [
        ("@revenue", EntryType.CAPTURE_IN, 500)
    ]
    assert moved.reservation.captures[0].splits[0].account == "@revenue"
    assert service.get_account("@revenue", "USD").balance == 500
    assert_ledger_consistent(database)


def test_a_balance_read_whose_roll_fails_still_answers(service, database, ride, monkeypatch):
    """A read that finds no checkpoint (or a long tail) rolls a batch: upkeep, which the schedule
    does every minute anyway. A database failure in it (a fault run saw a write conflict on its
    update, a 500 then) leaves the read answered with the balance it read."""
    from wallet_service import Conflict
    from wallet_service.use_cases import checkpoints

    service.capture_reservation(ride["hold"], 500)

    def failing_roll(*_args):
        raise Conflict("concurrent updates kept colliding; retry with the same idempotency key")

    monkeypatch.setattr(checkpoints, "roll", failing_roll)
    assert service.get_account("@revenue", "USD").balance == 500
    assert database["ledger"].find_one({"_id": checkpoints.checkpoint_id("@revenue", "USD")}) is None


def test_a_frozen_driver_still_gets_paid(service, database, ride):
    service.freeze_wallet(ride["driver"])
    service.capture_reservation(ride["hold"], splits=[{"walletId": ride["driver"], "amount": 2_000}])
    assert service.get_wallet(ride["driver"]).balance == 2_000
    assert_ledger_consistent(database)


@pytest.mark.parametrize(
    "splits",
    [
        [{"walletId": "0123456789abcdef01234567", "amount": 2_000}],  # no such wallet
        [{"walletId": "euros", "amount": 2_000}],  # another currency (filled in below)
        [{"account": "@tips", "amount": 2_000}],  # never opened
        [{"account": "@revenue", "amount": 1_000}, {"account": "@revenue", "amount": 1_000}],  # twice
        [{"account": "@revenue", "amount": 1_999}],  # does not add up to the hold
        [{"walletId": "rider", "amount": 2_000}],  # the hold's own wallet
        [{"account": "revenue", "amount": 2_000}],  # not an account name
        [{"walletId": "0123456789abcdef01234567", "account": "@revenue", "amount": 2_000}],  # both
        [{"amount": 2_000}],  # neither
        [],
    ],
)
def test_a_bad_split_is_a_validation_error_and_nothing_moves(service, database, ride, splits):
    euros = service.create_wallet("driver", "EUR").wallet.id
    ids = {"euros": euros, "rider": ride["rider"]}
    splits = [
        {**split, "walletId": ids.get(split["walletId"], split["walletId"])} if "walletId" in split else split
        for split in splits
    ]
    before = snapshot(database)
    with pytest.raises(ValidationFailed) as refused:
        service.capture_reservation(ride["hold"], splits=splits, request=Request(idempotency_key="bad-split"))
    assert refused.value.errors[0].field.startswith("splits")
    assert snapshot(database) == before


def test_splits_must_add_up_to_the_amount_named(service, ride):
    with pytest.raises(ValidationFailed, match="must add up to the captured amount 1500"):
        service.capture_reservation(ride["hold"], 1_500, splits=[{"walletId": ride["driver"], "amount": 1_000}])


def test_a_split_that_would_overflow_the_driver_is_refused(service, database, ride):
    database.wallets.update_one({"_id": ObjectId(ride["driver"])}, {"$set": {"balance": Int64(MAX_INT64 - 10)}})
    before = snapshot(database)
    with pytest.raises(BalanceOverflow):
        service.capture_reservation(ride["hold"], splits=[{"walletId": ride["driver"], "amount": 2_000}])
    assert snapshot(database) == before


def test_platform_accounts_open_once_and_answer_their_balance_and_postings(service, database):
    wallet = service.create_wallet("alice", "USD", opening_balance=700).wallet.id
    service.deposit(wallet, 300)
    funding = service.get_account("@funding", "USD")
    assert (funding.name, funding.currency, funding.balance, funding.built_in) == ("@funding", "USD", -1_000, True)
    assert service.get_account("@funding", "EUR").balance == 0  # built in, in every currency
    first = service.list_account_entries("@funding", "USD", limit=1)
    assert [entry.amount for entry in first.items] == [300]
    second = service.list_account_entries("@funding", "USD", limit=1, cursor=first.next_cursor)
    assert [entry.amount for entry in second.items] == [700]
    assert second.next_cursor is None
    assert {entry.wallet_id for entry in (*first.items, *second.items)} == {wallet}

    opened = service.open_account("@tips", "USD")
    assert (opened.name, opened.balance, opened.built_in) == ("@tips", 0, False)
    assert service.get_account("@tips", "USD").balance == 0
    with pytest.raises(AccountExists):
        service.open_account("@tips", "USD")
    with pytest.raises(AccountExists):
        service.open_account("@revenue", "USD")
    with pytest.raises(NotFound):
        service.get_account("@tips", "EUR")
    with pytest.raises(NotFound):
        service.list_account_entries("@nobody", "USD")
    with pytest.raises(ValidationFailed):
        service.open_account("tips", "USD")
    with pytest.raises(ValidationFailed):
        service.list_account_entries("@funding", "USD", cursor="forged")
