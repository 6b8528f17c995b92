"""Bad input is refused with ValidationFailed, naming each bad field, before anything is written."""

from __future__ import annotations

import math

import pytest

from tests.ledger_checks import snapshot
from wallet_service import NotFound, Request, ValidationFailed, WalletService

BAD_AMOUNTS = [
    True,
    False,
    1.0,
    1.5,
    100.0,
    math.nan,
    math.inf,
    -math.inf,
    "100",
    None,
    -1,
    0,
    10**15 + 1,
    2**63,
    {"$gt": 0},
    [100],
]
INJECTIONS = [{"$gt": ""}, {"$ne": None}, {"$where": "1"}, ["a"], 7, b"bytes"]


@pytest.fixture
def ids(service: WalletService) -> dict[str, str]:
    wallet = service.create_wallet("alice", "USD", opening_balance=1_000).wallet.id
    other = service.create_wallet("bob", "USD").wallet.id
    reservation = service.create_reservation(wallet, 100).reservation.id
    return {"wallet": wallet, "other": other, "reservation": reservation}


def money_calls(service: WalletService, ids: dict[str, str]):
    """Every money-moving call, as a function of its amount."""
    return {
        "deposit": lambda amount: service.deposit(ids["wallet"], amount),
        "withdraw": lambda amount: service.withdraw(ids["wallet"], amount),
        "transfer": lambda amount: service.transfer(ids["wallet"], ids["other"], amount),
        "create_reservation": lambda amount: service.create_reservation(ids["wallet"], amount),
        "capture_reservation": lambda amount: service.capture_reservation(ids["reservation"], amount),
        "capture_not_final": lambda amount: service.capture_reservation(ids["reservation"], amount, final=False),
        "increment_reservation": lambda amount: service.increment_reservation(ids["reservation"], amount),
    }


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_every_bad_amount_kind_is_refused_everywhere(service, database, ids, amount):
    if amount is None:
        # No amount: a final capture takes all the hold still holds.
        calls = {name: call for name, call in money_calls(service, ids).items() if name != "capture_reservation"}
    else:
        calls = money_calls(service, ids)
    before = snapshot(database)
    for name, call in calls.items():
        with pytest.raises(ValidationFailed) as refused:
            call(amount)
        assert [error.field for error in refused.value.errors] == ["amount"], name
    assert snapshot(database) == before


def test_largest_amount_is_accepted(service, ids):
    assert service.deposit(ids["wallet"], 10**15).wallet.balance == 10**15 + 1_000


@pytest.mark.parametrize("opening", [-1, 1.0, True, "5", 10**15 + 1, None])
def test_bad_opening_balance(service, database, opening):
    with pytest.raises(ValidationFailed):
        service.create_wallet("zed", "USD", opening_balance=opening)
    assert database["wallets"].count_documents({}) == 0


@pytest.mark.parametrize("currency", ["usd", "US", "USDD", "123", "XXX", "XAU", "", None, 840, {"$gt": ""}, " USD"])
def test_bad_currency(service, database, currency):
    with pytest.raises(ValidationFailed) as refused:
        service.create_wallet("zed", currency)
    assert refused.value.errors[0].field == "currency"
    assert database["wallets"].count_documents({}) == 0


@pytest.mark.parametrize(
    "bad_id",
    [
        "",
        "123",
        "0123456789ABCDEF01234567",
        "zzzzzzzzzzzzzzzzzzzzzzzz",
        "0123456789abcdef012345678",
        None,
        12,
        {"$gt": ""},
    ],
)
def test_malformed_ids(service, database, ids, bad_id):
    before = snapshot(database)
    calls = [
        lambda: service.get_wallet(bad_id),
        lambda: service.deposit(bad_id, 1),
        lambda: service.withdraw(bad_id, 1),
        lambda: service.transfer(bad_id, ids["other"], 1),
        lambda: service.transfer(ids["wallet"], bad_id, 1),
        lambda: service.create_reservation(bad_id, 1),
        lambda: service.get_reservation(bad_id),
        lambda: service.capture_reservation(bad_id),
        lambda: service.release_reservation(bad_id),
        lambda: service.increment_reservation(bad_id, 1),
        lambda: service.list_transactions(bad_id),
        lambda: service.list_reservations(bad_id),
        lambda: service.freeze_wallet(bad_id),
        lambda: service.unfreeze_wallet(bad_id),
    ]
    for call in calls:
        with pytest.raises(ValidationFailed):
            call()
    assert snapshot(database) == before


def test_well_formed_unknown_ids_are_not_found(service, ids):
    unknown = "aaaaaaaaaaaaaaaaaaaaaaaa"
    with pytest.raises(NotFound):
        service.get_wallet(unknown)
    with pytest.raises(NotFound):
        service.get_reservation(ids["wallet"])  # a wallet id is not a reservation id


@pytest.mark.parametrize("injection", INJECTIONS, ids=repr)
def test_operator_injection_in_every_string_field(service, database, ids, injection):
    wallet, reservation = ids["wallet"], ids["reservation"]
    before = snapshot(database)
    calls = {
        "ownerId": lambda: service.create_wallet(injection, "USD"),
        "owner scope": lambda: service.get_wallet(wallet, owner_id=injection),
        "walletId": lambda: service.deposit(injection, 1),
        "idempotencyKey": lambda: service.deposit(wallet, 1, Request(idempotency_key=injection)),
        "referenceType": lambda: service.withdraw(wallet, 1, Request(reference_type=injection)),
        "referenceId": lambda: service.create_reservation(wallet, 1, Request(reference_id=injection)),
        "metadata value": lambda: service.deposit(wallet, 1, Request(metadata={"note": injection})),
        "reservationId": lambda: service.capture_reservation(injection),
        "status": lambda: service.list_reservations(wallet, status=injection),
        "type": lambda: service.list_transactions(wallet, entry_type=injection),
        "cursor": lambda: service.list_transactions(wallet, cursor=injection),
        "release key": lambda: service.release_reservation(reservation, Request(idempotency_key=injection)),
        "increment reservationId": lambda: service.increment_reservation(injection, 1),
        "onExpiry": lambda: service.create_reservation(wallet, 1, on_expiry=injection),
        "captureTo": lambda: service.create_reservation(wallet, 1, on_expiry="capture", capture_to=injection),
        "captureTo wallet": lambda: service.create_reservation(
            wallet, 1, on_expiry="capture", capture_to={"walletId": injection}
        ),
        "final": lambda: service.capture_reservation(reservation, 1, final=injection),
    }
    for name, call in calls.items():
        if name == "metadata value" and isinstance(injection, int):
            continue  # an integer is a valid metadata value
        with pytest.raises(ValidationFailed):
            call()
    assert snapshot(database) == before


@pytest.mark.parametrize(
    "metadata",
    [
        {"$set": "x"},
        {"a.b": 1},
        {"": 1},
        {"k": 1.5},
        {"k": {"nested": 1}},
        {"k": "x" * 513},
        {f"k{index}": index for index in range(33)},
        {"k": 2**64},
        "not a dict",
    ],
)
def test_bad_metadata(service, database, ids, metadata):
    before = snapshot(database)
    with pytest.raises(ValidationFailed) as refused:
        service.deposit(ids["wallet"], 1, Request(metadata=metadata))
    assert refused.value.errors[0].field.startswith("metadata")
    assert snapshot(database) == before


@pytest.mark.parametrize("key", ["", "k" * 256, "has space", "tab\t", "ünïcode", "new\nline"])
def test_bad_idempotency_keys(service, ids, key):
    with pytest.raises(ValidationFailed) as refused:
        service.deposit(ids["wallet"], 1, Request(idempotency_key=key))
    assert refused.value.errors[0].field == "idempotencyKey"


def test_longest_key_is_accepted(service, ids):
    assert service.deposit(ids["wallet"], 1, Request(idempotency_key="k" * 255)).entries[0].amount == 1


@pytest.mark.parametrize("ttl", [0, 604_801, 1.5, True, "60", -5])
def test_bad_ttl(service, database, ids, ttl):
    before = snapshot(database)
    with pytest.raises(ValidationFailed):
        service.create_reservation(ids["wallet"], 1, ttl_seconds=ttl)
    assert snapshot(database) == before


def test_ttl_extremes_are_accepted(service, ids):
    assert service.create_reservation(ids["wallet"], 1, ttl_seconds=1).reservation.amount == 1
    assert service.create_reservation(ids["wallet"], 1, ttl_seconds=604_800).reservation.amount == 1


def test_every_bad_field_is_reported_at_once(service, ids):
    with pytest.raises(ValidationFailed) as refused:
        service.deposit("nope", 1.5, Request(idempotency_key="", metadata={"$x": 1}))
    assert [error.field for error in refused.value.errors] == ["walletId", "amount", "idempotencyKey", "metadata"]


def test_a_request_that_is_not_one_is_refused(service, database, ids):
    before = snapshot(database)
    with pytest.raises(ValidationFailed) as refused:
        service.deposit(ids["wallet"], 1, {"idempotency_key": "k"})
    assert [error.field for error in refused.value.errors] == ["request"]
    assert snapshot(database) == before


def test_what_a_request_may_not_say_to_some_operations(service, database, ids):
    """A refund is the platform's (no owner); opening a wallet takes no reference and, confined to
    an owner, opens only that owner's wallet."""
    before = snapshot(database)
    refusals = {
        "ownerId": lambda: service.refund_reservation(ids["reservation"], 1, Request(owner_id="alice")),
        "reference": lambda: service.create_wallet("carol", "USD", Request(reference_type="import")),
        "ownerId ": lambda: service.create_wallet("carol", "USD", Request(owner_id="dave")),
    }
    for field, call in refusals.items():
        with pytest.raises(ValidationFailed) as refused:
            call()
        assert [error.field for error in refused.value.errors] == [field.strip()]
    assert snapshot(database) == before
    assert service.create_wallet("carol", "USD", Request(owner_id="carol")).wallet.owner_id == "carol"
