"""A key's refusal never changes on retry. Everything a request can be refused for whatever the money
(a destination that is not there, a wallet in another currency, an account never opened) is checked
before a refusal for the money, which the key keeps: so a retry once the wallet can pay meets the
same answer, never a 404 or a 422 it did not meet the first time. Each case is made twice, with the
wallet empty and then paid for."""

from __future__ import annotations

import pytest
from bson import ObjectId

from tests.ledger_checks import assert_ledger_consistent, snapshot
from wallet_service import (
    InsufficientFunds,
    InvalidState,
    NotFound,
    Request,
    ValidationFailed,
    WalletError,
    WalletService,
)

MISSING = str(ObjectId())


@pytest.fixture
def wallets(service: WalletService) -> dict[str, str]:
    return {
        "empty": service.create_wallet("rider", "USD").wallet.id,
        "driver": service.create_wallet("driver", "USD").wallet.id,
        "euro": service.create_wallet("driver", "EUR").wallet.id,
    }


def refused(call) -> WalletError:
    with pytest.raises(WalletError) as refusal:
        call()
    return refusal.value


def fields(refusal: WalletError) -> list[str]:
    return [error.field for error in refusal.errors] if isinstance(refusal, ValidationFailed) else []


def retried_once_paid(service, database, wallets, call) -> tuple[WalletError, WalletError]:
    """The call's refusal with the wallet empty, and its retry (same key) once the wallet could pay."""
    first = refused(call)
    service.deposit(wallets["empty"], 10_000)
    before = snapshot(database)
    again = refused(call)
    assert snapshot(database) == before  # the retry moved nothing
    return first, again


CASES = {
    # name: (the call, given the service and the wallets; the refusal it gets both times)
    "transfer to a missing wallet": (
        lambda service, w: service.transfer(w["empty"], MISSING, 500, Request(idempotency_key="t1")),
        (NotFound, []),
    ),
    "transfer to another currency": (
        lambda service, w: service.transfer(w["empty"], w["euro"], 500, Request(idempotency_key="t2")),
        (ValidationFailed, ["toWalletId"]),
    ),
    "hold captured at expiry to a missing wallet": (
        lambda service, w: service.create_reservation(
            w["empty"], 500, Request(idempotency_key="h1"), on_expiry="capture", capture_to={"walletId": MISSING}
        ),
        (ValidationFailed, ["captureTo.walletId"]),
    ),
    "hold captured at expiry to its own wallet": (
        lambda service, w: service.create_reservation(
            w["empty"], 500, Request(idempotency_key="h2"), on_expiry="capture", capture_to={"walletId": w["empty"]}
        ),
        (ValidationFailed, ["captureTo.walletId"]),
    ),
    "hold captured at expiry to another currency": (
        lambda service, w: service.create_reservation(
            w["empty"], 500, Request(idempotency_key="h3"), on_expiry="capture", capture_to={"walletId": w["euro"]}
        ),
        (ValidationFailed, ["captureTo.walletId"]),
    ),
    "hold captured at expiry to an account never opened": (
        lambda service, w: service.create_reservation(
            w["empty"], 500, Request(idempotency_key="h4"), on_expiry="capture", capture_to={"account": "@tips"}
        ),
        (ValidationFailed, ["captureTo.account"]),
    ),
    # For the money alone: kept, and answered again from the record.
    "transfer the wallet cannot pay": (
        lambda service, w: service.transfer(w["empty"], w["driver"], 500, Request(idempotency_key="t3")),
        (InsufficientFunds, []),
    ),
    "hold the wallet cannot pay": (
        lambda service, w: service.create_reservation(
            w["empty"], 500, Request(idempotency_key="h5"), on_expiry="capture", capture_to={"walletId": w["driver"]}
        ),
        (InsufficientFunds, []),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_retry_once_the_wallet_can_pay_meets_the_same_refusal(service, database, wallets, case):
    call, (kind, bad_fields) = CASES[case]
    first, again = retried_once_paid(service, database, wallets, lambda: call(service, wallets))
    for refusal in (first, again):
        assert (type(refusal), fields(refusal)) == (kind, bad_fields)
    assert again.message == first.message
    assert bool(again.replayed) is (kind is InsufficientFunds)  # a kept refusal is a replay; a 404 or 422 is not
    assert_ledger_consistent(database)


def test_a_refund_kept_for_what_was_captured_stays_kept_though_its_source_is_wrong(service, database, wallets):
    """A refund's sources are checked against what the hold's captures left at each place, which
    later captures and refunds change: a refusal kept under the key is answered from the record
    before the sources are looked at again."""
    service.deposit(wallets["empty"], 1_000)
    held = service.create_reservation(wallets["empty"], 1_000).reservation.id
    service.capture_reservation(held, 200, splits=[{"walletId": wallets["driver"], "amount": 200}], final=False)

    def refund() -> None:
        service.refund_reservation(
            held, 500, Request(idempotency_key="r1"), sources=[{"walletId": wallets["driver"], "amount": 500}]
        )

    first = refused(refund)
    assert isinstance(first, InvalidState)  # 200 captured, 500 asked
    service.capture_reservation(held, 800, splits=[{"account": "@revenue", "amount": 800}])
    before = snapshot(database)
    again = refused(refund)  # 1,000 captured now, but only 200 of it at the driver's
    assert (type(again), again.message, again.replayed) == (InvalidState, first.message, True)
    assert snapshot(database) == before
    assert_ledger_consistent(database)
