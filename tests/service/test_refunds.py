"""Refunds of a captured hold: proportional by default (largest remainder), or from named sources;
never more than captured minus refunded; a payee that no longer has the money is a refusal that
names it; keyed refunds replay."""

from __future__ import annotations

import pytest

from tests.ledger_checks import assert_ledger_consistent, platform_balances, snapshot
from wallet_service import EntryType, InsufficientFunds, InvalidState, Request, ValidationFailed, WalletService


@pytest.fixture
def fare(service: WalletService) -> dict[str, str]:
    """A ride of 1,000 captured from the rider: 700 to the driver, 300 to @revenue."""
    rider = service.create_wallet("rider", "USD", opening_balance=5_000).wallet.id
    driver = service.create_wallet("driver", "USD").wallet.id
    hold = service.create_reservation(rider, 1_200).reservation.id
    splits = [{"walletId": driver, "amount": 700}, {"account": "@revenue", "amount": 300}]
    service.capture_reservation(hold, 1_000, splits=splits)
    return {"rider": rider, "driver": driver, "hold": hold}


def test_a_refund_comes_back_in_proportion_to_the_split(service, database, fare):
    moved = service.refund_reservation(fare["hold"], 333, Request(idempotency_key="refund-1"), reason="late pickup")
    assert moved.wallet.id == fare["rider"]
    assert moved.wallet.balance == 5_000 - 1_000 + 333
    rows = [(entry.wallet_id, entry.type, entry.amount) for entry in moved.entries]
    assert rows == [(fare["rider"], EntryType.REFUND_IN, 333), (fare["driver"], EntryType.REFUND_OUT, 233)]
    assert [(entry.account, entry.type, entry.amount) for entry in moved.account_entries] == [
        ("@revenue", EntryType.REFUND_OUT, 100)  # 99.9 rounded up: the larger remainder
    ]
    hold = moved.reservation
    assert (hold.refunded_amount, hold.captured_amount) == (333, 1_000)
    (refund,) = hold.refunds
    assert (refund.amount, refund.reason) == (333, "late pickup")
    assert [(source.wallet_id, source.account, source.amount) for source in refund.sources] == [
        (fare["driver"], None, 233),
        (None, "@revenue", 100),
    ]
    assert service.get_wallet(fare["driver"]).balance == 467
    assert platform_balances(database)[("@revenue", "USD")] == 200
    assert_ledger_consistent(database)


def test_refunds_repeat_up_to_what_was_captured_and_no_further(service, database, fare):
    service.refund_reservation(fare["hold"], 600)
    service.refund_reservation(fare["hold"], 399)
    before = snapshot(database)
    with pytest.raises(InvalidState, match="has 1 left to refund"):
        service.refund_reservation(fare["hold"], 2)
    assert snapshot(database) == before
    last = service.refund_reservation(fare["hold"], 1)
    assert last.reservation.refunded_amount == 1_000
    # Every destination gave back exactly what it received: the shares never pass what is left.
    assert service.get_wallet(fare["driver"]).balance == 0
    assert platform_balances(database)[("@revenue", "USD")] == 0
    assert service.get_wallet(fare["rider"]).balance == 5_000
    assert_ledger_consistent(database)


def test_a_refund_may_name_its_sources(service, database, fare):
    moved = service.refund_reservation(fare["hold"], 300, sources=[{"account": "@revenue", "amount": 300}])
    assert [(entry.account, entry.amount) for entry in moved.account_entries] == [("@revenue", 300)]
    assert service.get_wallet(fare["driver"]).balance == 700
    before = snapshot(database)
    for sources, field in (
        ([{"account": "@revenue", "amount": 1}], "from[0].amount"),  # nothing left there
        ([{"account": "@tips", "amount": 1}], "from[0]"),  # never paid
        ([{"walletId": fare["rider"], "amount": 1}], "from[0]"),  # the payer itself
    ):
        with pytest.raises(ValidationFailed) as refused:
            service.refund_reservation(fare["hold"], 1, sources=sources)
        assert refused.value.errors[0].field == field
    with pytest.raises(ValidationFailed, match="must add up to the refunded amount 5"):
        service.refund_reservation(fare["hold"], 5, sources=[{"walletId": fare["driver"], "amount": 4}])
    assert snapshot(database) == before
    assert_ledger_consistent(database)


def test_a_payee_that_spent_the_money_is_named_and_nothing_moves(service, database, fare):
    service.withdraw(fare["driver"], 650)
    before = snapshot(database)
    with pytest.raises(InsufficientFunds, match=fare["driver"]) as refused:
        service.refund_reservation(fare["hold"], 1_000, Request(idempotency_key="too-late"))
    assert (refused.value.available, refused.value.requested) == (50, 700)
    assert snapshot(database) == before


def test_only_a_captured_hold_is_refunded(service, database):
    wallet = service.create_wallet("rider", "USD", opening_balance=1_000).wallet.id
    held = service.create_reservation(wallet, 100).reservation.id
    released = service.create_reservation(wallet, 100).reservation.id
    service.release_reservation(released)
    for hold in (held, released):
        with pytest.raises(InvalidState, match="nothing was captured"):
            service.refund_reservation(hold, 1)
    assert_ledger_consistent(database)


def test_a_keyed_refund_replays_even_when_it_could_not_happen_again(service, fare):
    first = service.refund_reservation(fare["hold"], 1_000, Request(idempotency_key="full-refund"))
    again = service.refund_reservation(fare["hold"], 1_000, Request(idempotency_key="full-refund"))
    assert again.replayed
    assert again.model_dump() == first.model_dump()
