"""The journal listing: newest first, keyset pages that use the index at any depth, type filter."""

from __future__ import annotations

import pytest
from bson import Int64, ObjectId

from wallet_core import EntryType, InvalidCursor, NotFound, ValidationFailed, WalletService
from wallet_core.store import LEDGER
from wallet_core.validation import encode_cursor


@pytest.fixture
def wallet_id(service: WalletService) -> str:
    wallet = service.create_wallet("rider", "USD", opening_balance=1_000).wallet.id
    for amount in range(1, 6):
        service.deposit(wallet, amount)
        service.withdraw(wallet, amount)
    return wallet


def test_newest_first_in_pages(service, wallet_id):
    seen = []
    cursor = None
    while True:
        page = service.list_transactions(wallet_id, limit=4, cursor=cursor)
        seen.extend(entry.sequence for entry in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(range(11, 0, -1))


def test_type_filter(service, wallet_id):
    deposits = service.list_transactions(wallet_id, entry_type="DEPOSIT", limit=3)
    assert [entry.type for entry in deposits.items] == [EntryType.DEPOSIT] * 3
    assert [entry.amount for entry in deposits.items] == [5, 4, 3]
    rest = service.list_transactions(wallet_id, entry_type="DEPOSIT", limit=3, cursor=deposits.next_cursor)
    assert [entry.amount for entry in rest.items] == [2, 1, 1_000]
    assert rest.next_cursor is None


def test_exact_page_has_no_next_cursor(service, wallet_id):
    page = service.list_transactions(wallet_id, limit=11)
    assert len(page.items) == 11
    assert page.next_cursor is None


def test_deep_pages_use_the_index(service, database, wallet_id):
    """A keyset page is an index range scan starting at the cursor, not a skip over earlier pages."""
    page = service.list_transactions(wallet_id, limit=2)
    page = service.list_transactions(wallet_id, limit=2, cursor=page.next_cursor)
    position = page.items[-1].sequence
    plan = (
        database[LEDGER]
        .find({"walletId": ObjectId(wallet_id), "kind": "entry", "sequence": {"$lt": Int64(position)}})
        .sort("sequence", -1)
        .limit(3)
        .explain()
    )
    assert "entries_by_wallet" in str(plan), plan


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "",
        "x" * 500,
        encode_cursor("transactions:0123456789abcdef01234567:", 3),  # another wallet's cursor
        encode_cursor("reservations:{wallet}:", 3),
    ],
)
def test_invalid_cursor(service, wallet_id, cursor):
    with pytest.raises(ValidationFailed) as refused:
        service.list_transactions(wallet_id, cursor=cursor.replace("{wallet}", wallet_id))
    assert refused.value.errors[0].field == "cursor"


def test_cursor_of_one_filter_is_refused_by_another(service, wallet_id):
    page = service.list_transactions(wallet_id, limit=2, entry_type="WITHDRAWAL")
    with pytest.raises(ValidationFailed):
        service.list_transactions(wallet_id, limit=2, cursor=page.next_cursor)


@pytest.mark.parametrize("limit", [0, 201, -1, 1.0, True, "5", None])
def test_limit_bounds(service, wallet_id, limit):
    with pytest.raises(ValidationFailed):
        service.list_transactions(wallet_id, limit=limit)


def test_limit_extremes(service, wallet_id):
    assert len(service.list_transactions(wallet_id, limit=1).items) == 1
    assert len(service.list_transactions(wallet_id, limit=200).items) == 11


def test_unknown_type_and_wallet(service, wallet_id):
    with pytest.raises(ValidationFailed):
        service.list_transactions(wallet_id, entry_type="REFUND")
    with pytest.raises(NotFound):
        service.list_transactions("0123456789abcdef01234567")


@pytest.mark.parametrize("position", ["²", "9" * 40, str(2**63), "-1", ""])
def test_a_forged_cursor_position_is_invalid_cursor(service, wallet_id, position):
    with pytest.raises(InvalidCursor):
        service.list_transactions(wallet_id, cursor=encode_cursor(f"transactions:{wallet_id}:", position))
