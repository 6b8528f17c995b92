"""Happy and error paths of wallets, deposits, withdrawals and transfers, with the state checked after each failure."""

from __future__ import annotations

import pytest
from bson import Int64, ObjectId

from tests.ledger_checks import assert_ledger_consistent, platform_balances, snapshot, total_money
from wallet_service import (
    BalanceOverflow,
    EntryType,
    IdempotencyKeyMismatch,
    InsufficientFunds,
    NotFound,
    Request,
    ValidationFailed,
    WalletExists,
    WalletFrozen,
    WalletService,
    WalletStatus,
)
from wallet_service.ledger.limits import MAX_INT64

MISSING_ID = "0123456789abcdef01234567"


@pytest.fixture
def wallet_id(service: WalletService) -> str:
    return service.create_wallet("alice", "USD", opening_balance=10_000).wallet.id


def test_create_wallet_journals_the_opening_balance(service, database):
    created = service.create_wallet("alice", "EUR", Request(metadata={"channel": "app"}), opening_balance=2_500)
    wallet = created.wallet
    assert (wallet.owner_id, wallet.currency, wallet.balance, wallet.held, wallet.available) == (
        "alice",
        "EUR",
        2_500,
        0,
        2_500,
    )
    assert wallet.status is WalletStatus.ACTIVE
    (entry,) = created.entries
    assert (entry.type, entry.amount, entry.balance_after, entry.sequence) == (EntryType.DEPOSIT, 2_500, 2_500, 1)
    assert entry.metadata == {"channel": "app"}
    assert service.get_wallet(wallet.id) == wallet
    assert_ledger_consistent(database)


def test_create_wallet_without_opening_balance_has_an_empty_journal(service):
    created = service.create_wallet("bob", "JPY")
    assert created.entries == ()
    assert (created.wallet.balance, created.wallet.sequence) == (0, 0)
    assert service.list_transactions(created.wallet.id).items == ()


def test_second_wallet_in_a_currency_is_a_conflict_naming_the_first(service, database, wallet_id):
    before = snapshot(database)
    with pytest.raises(WalletExists) as refused:
        service.create_wallet("alice", "USD", opening_balance=5)
    assert refused.value.existing_wallet_id == wallet_id
    assert wallet_id in str(refused.value)
    assert snapshot(database) == before
    assert service.create_wallet("alice", "GBP").wallet.currency == "GBP"
    assert service.create_wallet("carol", "USD").wallet.owner_id == "carol"


def test_create_wallet_with_a_key_replays(service):
    first = service.create_wallet("dave", "USD", Request(idempotency_key="open-1"), opening_balance=100)
    again = service.create_wallet("dave", "USD", Request(idempotency_key="open-1"), opening_balance=100)
    assert again.replayed
    assert not first.replayed
    assert again.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
    with pytest.raises(IdempotencyKeyMismatch):
        service.create_wallet("dave", "USD", Request(idempotency_key="open-1"), opening_balance=101)


def test_deposit(service, database, wallet_id):
    moved = service.deposit(
        wallet_id, 1_500, Request(reference_type="topup", reference_id="card-42", metadata={"n": 1})
    )
    (entry,) = moved.entries
    assert (entry.type, entry.amount, entry.balance_delta, entry.held_delta) == (EntryType.DEPOSIT, 1_500, 1_500, 0)
    assert (entry.balance_after, entry.held_after, entry.sequence) == (11_500, 0, 2)
    assert (entry.reference_type, entry.reference_id, entry.metadata) == ("topup", "card-42", {"n": 1})
    assert entry.operation_id == moved.operation_id
    assert entry.id == f"{wallet_id}:2"  # one entry per wallet position, enforced by the _id index
    assert moved.wallet.balance == 11_500
    assert service.get_wallet(wallet_id).balance == 11_500
    assert_ledger_consistent(database)


def test_every_movement_is_balanced_by_a_platform_account(service, database, wallet_id):
    """Double entry: a deposit comes from @funding, a withdrawal goes to @payouts (each posting
    names the wallet on the other side); the opening balance came from @funding too."""
    deposit = service.deposit(wallet_id, 1_500, Request(reference_type="topup", reference_id="card-42"))
    (funding,) = deposit.account_entries
    assert (funding.account, funding.currency, funding.type, funding.amount, funding.balance_delta) == (
        "@funding",
        "USD",
        EntryType.FUNDING,
        1_500,
        -1_500,
    )
    assert (funding.wallet_id, funding.reference_id) == (wallet_id, "card-42")
    assert funding.operation_id == deposit.operation_id
    withdrawal = service.withdraw(wallet_id, 400)
    (payout,) = withdrawal.account_entries
    assert (payout.account, payout.type, payout.balance_delta) == ("@payouts", EntryType.PAYOUT, 400)
    assert platform_balances(database) == {("@funding", "USD"): -11_500, ("@payouts", "USD"): 400}
    assert sum(platform_balances(database).values()) + total_money(database) == 0
    assert_ledger_consistent(database)


def test_a_balance_past_int64_is_a_typed_refusal_and_nothing_moves(service, database, wallet_id):
    """TigerBeetle's overflows_credits: a credit that would pass Int64 is refused before it is written."""
    near = MAX_INT64 - 100
    database.wallets.update_one({"_id": ObjectId(wallet_id)}, {"$set": {"balance": Int64(near)}})
    other = service.create_wallet("bob", "USD", opening_balance=1_000).wallet.id
    before = snapshot(database)
    with pytest.raises(BalanceOverflow):
        service.deposit(wallet_id, 101, Request(idempotency_key="too-much"))
    with pytest.raises(BalanceOverflow):
        service.transfer(other, wallet_id, 101)
    assert snapshot(database) == before
    service.deposit(wallet_id, 100)  # up to the last unit is fine
    assert service.get_wallet(wallet_id).balance == MAX_INT64


def test_deposit_to_unknown_wallet(service, database, wallet_id):
    before = snapshot(database)
    with pytest.raises(NotFound):
        service.deposit(MISSING_ID, 1)
    assert snapshot(database) == before


def test_withdraw(service, database, wallet_id):
    moved = service.withdraw(wallet_id, 4_000)
    (entry,) = moved.entries
    assert (entry.type, entry.balance_delta, entry.balance_after) == (EntryType.WITHDRAWAL, -4_000, 6_000)
    assert moved.wallet.available == 6_000
    service.withdraw(wallet_id, 6_000)
    assert service.get_wallet(wallet_id).balance == 0
    assert_ledger_consistent(database)


def test_withdraw_more_than_available_changes_nothing(service, database, wallet_id):
    service.create_reservation(wallet_id, 7_000)
    before = snapshot(database)
    with pytest.raises(InsufficientFunds) as refused:
        service.withdraw(wallet_id, 3_001)
    assert (refused.value.available, refused.value.requested) == (3_000, 3_001)
    assert snapshot(database) == before
    assert service.withdraw(wallet_id, 3_000).wallet.available == 0


def test_frozen_wallet_takes_deposits_but_lets_nothing_out(service, database, wallet_id):
    other = service.create_wallet("bob", "USD", opening_balance=100).wallet.id
    frozen = service.freeze_wallet(wallet_id)
    assert frozen.status is WalletStatus.FROZEN
    assert service.freeze_wallet(wallet_id).status is WalletStatus.FROZEN  # repeating is harmless
    before = snapshot(database)
    with pytest.raises(WalletFrozen):
        service.withdraw(wallet_id, 1)
    with pytest.raises(WalletFrozen):
        service.create_reservation(wallet_id, 1)
    with pytest.raises(WalletFrozen):
        service.transfer(wallet_id, other, 1)
    assert snapshot(database) == before
    assert service.deposit(wallet_id, 5).wallet.balance == 10_005
    assert service.transfer(other, wallet_id, 10).counterparty_wallet.balance == 10_015
    assert service.unfreeze_wallet(wallet_id).status is WalletStatus.ACTIVE
    assert service.withdraw(wallet_id, 15).wallet.balance == 10_000
    assert_ledger_consistent(database)


def test_freeze_unknown_wallet(service):
    with pytest.raises(NotFound):
        service.freeze_wallet(MISSING_ID)
    with pytest.raises(NotFound):
        service.unfreeze_wallet(MISSING_ID)


def test_transfer_moves_money_atomically(service, database, wallet_id):
    bob = service.create_wallet("bob", "USD").wallet.id
    moved = service.transfer(wallet_id, bob, 2_500, Request(reference_type="ride", reference_id="r-1"))
    out_entry, in_entry = moved.entries
    assert (out_entry.type, out_entry.wallet_id, out_entry.balance_after) == (EntryType.TRANSFER_OUT, wallet_id, 7_500)
    assert (in_entry.type, in_entry.wallet_id, in_entry.balance_after) == (EntryType.TRANSFER_IN, bob, 2_500)
    assert out_entry.counterparty_wallet_id == bob
    assert in_entry.counterparty_wallet_id == wallet_id
    assert out_entry.operation_id == in_entry.operation_id == moved.operation_id
    assert (moved.wallet.balance, moved.counterparty_wallet.balance) == (7_500, 2_500)
    assert_ledger_consistent(database)


def test_transfer_hides_the_other_owners_side(service, wallet_id):
    bob = service.create_wallet("bob", "USD").wallet.id
    moved = service.transfer(wallet_id, bob, 100, Request(owner_id="alice"))
    assert moved.counterparty_wallet is None
    assert [entry.wallet_id for entry in moved.entries] == [wallet_id]
    assert service.get_wallet(bob).balance == 100


def test_transfer_refusals_change_nothing(service, database, wallet_id):
    euros = service.create_wallet("bob", "EUR").wallet.id
    dollars = service.create_wallet("bob", "USD").wallet.id
    before = snapshot(database)
    with pytest.raises(ValidationFailed) as mismatch:
        service.transfer(wallet_id, euros, 1)
    assert mismatch.value.errors[0].field == "toWalletId"
    with pytest.raises(NotFound):
        service.transfer(wallet_id, MISSING_ID, 1)
    with pytest.raises(NotFound):
        service.transfer(MISSING_ID, dollars, 1)
    with pytest.raises(InsufficientFunds):
        service.transfer(wallet_id, dollars, 10_001)
    with pytest.raises(ValidationFailed):
        service.transfer(wallet_id, wallet_id, 1)
    with pytest.raises(NotFound):  # the source must belong to the acting owner
        service.transfer(dollars, wallet_id, 1, Request(owner_id="alice"))
    assert snapshot(database) == before


def test_owner_scope_hides_other_owners_wallets(service, database, wallet_id):
    before = snapshot(database)
    for call in (
        lambda: service.get_wallet(wallet_id, owner_id="mallory"),
        lambda: service.deposit(wallet_id, 1, Request(owner_id="mallory")),
        lambda: service.withdraw(wallet_id, 1, Request(owner_id="mallory")),
        lambda: service.create_reservation(wallet_id, 1, Request(owner_id="mallory")),
        lambda: service.freeze_wallet(wallet_id, owner_id="mallory"),
        lambda: service.list_transactions(wallet_id, owner_id="mallory"),
        lambda: service.list_reservations(wallet_id, owner_id="mallory"),
    ):
        with pytest.raises(NotFound):
            call()
    assert snapshot(database) == before
    assert service.get_wallet(wallet_id, owner_id="alice").id == wallet_id


def test_idempotent_replay_returns_the_original_result(service, database, wallet_id):
    first = service.withdraw(wallet_id, 300, Request(idempotency_key="w-1", metadata={"ride": "r9"}))
    service.deposit(wallet_id, 50)  # the state moves on
    again = service.withdraw(wallet_id, 300, Request(idempotency_key="w-1", metadata={"ride": "r9"}))
    assert again.replayed
    assert not first.replayed
    assert again.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
    assert service.get_wallet(wallet_id).balance == 10_000 - 300 + 50
    assert_ledger_consistent(database)


def test_replay_answers_even_when_the_call_would_now_fail(service, wallet_id):
    first = service.withdraw(wallet_id, 10_000, Request(idempotency_key="all-of-it"))
    again = service.withdraw(wallet_id, 10_000, Request(idempotency_key="all-of-it"))
    assert again.replayed
    assert again.entries == first.entries
    service.freeze_wallet(wallet_id)
    assert service.withdraw(wallet_id, 10_000, Request(idempotency_key="all-of-it")).replayed


def test_same_key_with_other_parameters_is_a_mismatch(service, database, wallet_id):
    service.deposit(wallet_id, 100, Request(idempotency_key="k"))
    before = snapshot(database)
    for call, names in (
        (lambda: service.deposit(wallet_id, 101, Request(idempotency_key="k")), "for a deposit request with different"),
        (
            lambda: service.deposit(wallet_id, 100, Request(idempotency_key="k", reference_id="x")),
            "for a deposit request with",
        ),
        (
            lambda: service.withdraw(wallet_id, 100, Request(idempotency_key="k")),
            "for a deposit request, not a withdraw",
        ),
    ):
        with pytest.raises(IdempotencyKeyMismatch, match=names):
            call()
    assert snapshot(database) == before


def test_keys_are_scoped_to_the_wallet_owner(service, wallet_id):
    bob = service.create_wallet("bob", "USD").wallet.id
    alice_deposit = service.deposit(wallet_id, 100, Request(idempotency_key="shared-key"))
    bob_deposit = service.deposit(bob, 100, Request(idempotency_key="shared-key"))
    assert not bob_deposit.replayed
    assert alice_deposit.operation_id != bob_deposit.operation_id
    assert service.get_wallet(bob).balance == 100


def test_calls_without_a_key_are_distinct_operations(service, wallet_id):
    first = service.deposit(wallet_id, 100)
    second = service.deposit(wallet_id, 100)
    assert first.operation_id != second.operation_id
    assert service.get_wallet(wallet_id).balance == 10_200


def test_a_keyed_refusal_keeps_its_answer_under_its_key(service, database, wallet_id):
    """As Stripe and TigerBeetle: a declined charge retried with its key is declined again, even
    once the wallet could pay; the same key with other parameters is still a mismatch."""
    with pytest.raises(InsufficientFunds) as first:
        service.withdraw(wallet_id, 50_000, Request(idempotency_key="big-withdrawal"))
    service.deposit(wallet_id, 100_000)
    before = snapshot(database)
    with pytest.raises(InsufficientFunds) as again:
        service.withdraw(wallet_id, 50_000, Request(idempotency_key="big-withdrawal"))
    assert (first.value.replayed, again.value.replayed) == (False, True)  # as a movement's answer says
    assert (again.value.message, again.value.available, again.value.requested) == (
        first.value.message,
        first.value.available,
        first.value.requested,
    )
    assert snapshot(database) == before
    with pytest.raises(IdempotencyKeyMismatch):
        service.withdraw(wallet_id, 40_000, Request(idempotency_key="big-withdrawal"))
    service.withdraw(wallet_id, 50_000, Request(idempotency_key="another-key"))  # a new key is a new request
    service.freeze_wallet(wallet_id)
    with pytest.raises(WalletFrozen):
        service.withdraw(wallet_id, 1, Request(idempotency_key="while-frozen"))
    service.unfreeze_wallet(wallet_id)
    with pytest.raises(WalletFrozen):
        service.withdraw(wallet_id, 1, Request(idempotency_key="while-frozen"))
    service.withdraw(wallet_id, 1)  # without a key, nothing is kept: the call is simply made again
    assert_ledger_consistent(database)
