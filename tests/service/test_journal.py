"""The journal listing: newest first, keyset pages that use the index at any depth, type filter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import CommandLog
from wallet_service import EntryType, InvalidCursor, NotFound, ValidationFailed, WalletService
from wallet_service.ledger.validation import encode_cursor
from wallet_service.storage.documents import LEDGER, utc_now_ms


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


def _explained_finds(database, commands: CommandLog) -> list[dict]:
    """The service's finds on the ledger since the log was cleared, each explained by the server."""
    finds = [command for command in commands.sent if command.get("find") == LEDGER]
    explained = []
    for find in finds:
        plain = {key: value for key, value in find.items() if key in FIND_FIELDS}
        explained.append(database.command("explain", plain, verbosity="executionStats"))
    return explained


FIND_FIELDS = ("find", "filter", "sort", "limit", "projection", "hint")


def _index_names(plan: dict) -> set[str]:
    names = set()
    if isinstance(plan, dict):
        if plan.get("stage") == "IXSCAN":
            names.add(plan["indexName"])
        for value in plan.values():
            names |= _index_names(value) if isinstance(value, dict | list) else set()
    elif isinstance(plan, list):
        for value in plan:
            names |= _index_names(value)
    return names


@pytest.mark.parametrize("entry_type", [None, "DEPOSIT"], ids=["journal", "one_type"])
def test_pages_at_any_depth_read_only_their_entries(service, database, service_commands, entry_type):
    """Every page is one bounded range of the wallet's index: the keys it examines are the page's
    (one more for a page of one type, which looks one past it), however deep the page is.

    Except on SecantusDB for a page of one type (docs/embedded-database.md, its differences): it sorts
    what the range holds instead of walking the index in order and stopping at the limit, so it
    examines every entry of that type below the cursor. The plan and the answer are still checked."""
    bounded = entry_type is None or not is_secantus(database)
    wallet = service.create_wallet("deep", "USD", opening_balance=1_000).wallet.id
    for amount in range(1, 41):
        service.deposit(wallet, amount)
    cursor, pages = None, 0
    while True:
        service_commands.clear()
        page = service.list_transactions(wallet, limit=5, cursor=cursor, entry_type=entry_type)
        (explained,) = _explained_finds(database, service_commands)
        stats = explained["executionStats"]
        winning = explained["queryPlanner"]["winningPlan"]
        expected = "wallet_entries" if entry_type is None else "wallet_entries_by_type"
        assert _index_names(winning) == {expected}, winning
        if bounded:
            assert stats["totalKeysExamined"] <= 6, (pages, stats)
            assert stats["totalDocsExamined"] <= 6, (pages, stats)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 9  # 41 entries (40 deposits and the opening one) in pages of 5


def is_secantus(database) -> bool:
    """SecantusDB says so in serverStatus (`secantus`), which mongod never has."""
    return "secantus" in database.client.admin.command("serverStatus")


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


@pytest.mark.parametrize("listing", ["list_transactions", "list_reservations"])
def test_a_wallet_the_caller_cannot_see_is_not_found_whatever_the_cursor(service, wallet_id, listing):
    """Ownership first: someone else's wallet, or none, is a 404 even with a cursor this listing
    never issued; on the caller's own wallet the cursor is refused."""
    service.create_reservation(wallet_id, 1)
    service.create_reservation(wallet_id, 2)
    list_page = getattr(service, listing)
    theirs = list_page(wallet_id, limit=1, owner_id="rider").next_cursor
    mallory = service.create_wallet("mallory", "USD").wallet.id
    for cursor in (theirs, "not-a-cursor"):
        with pytest.raises(NotFound):
            list_page(wallet_id, cursor=cursor, owner_id="mallory")
        with pytest.raises(NotFound):
            list_page("0" * 24, cursor=cursor)
        with pytest.raises(InvalidCursor):
            list_page(mallory, cursor=cursor, owner_id="mallory")


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


def test_the_balance_at_any_time_is_the_last_entry_then(database):
    """Entries carry the wallet's counters after them: the balance at a time is the last one by then."""
    clock = {"now": utc_now_ms()}
    timed = WalletService(database, time_budget=20.0, clock=lambda: clock["now"])
    start = clock["now"]
    wallet = timed.create_wallet("alice", "USD", opening_balance=1_000).wallet.id
    clock["now"] = start + timedelta(seconds=10)
    timed.create_reservation(wallet, 300)
    clock["now"] = start + timedelta(seconds=20)
    timed.withdraw(wallet, 200)
    cases = [
        (start - timedelta(seconds=1), (0, 0, 0)),
        (start, (1_000, 0, 1)),
        (start + timedelta(seconds=15), (1_000, 300, 2)),
        (start + timedelta(seconds=20), (800, 300, 3)),
    ]
    for at, (balance, held, sequence) in cases:
        then = timed.balance_at(wallet, at)
        assert (then.balance, then.held, then.available, then.sequence) == (balance, held, balance - held, sequence)
    with pytest.raises(NotFound):
        timed.balance_at(wallet, start, owner_id="mallory")
    with pytest.raises(ValidationFailed):
        timed.balance_at(wallet, start.replace(tzinfo=None))
    # Times that leave the years 1 to 9999 once moved to UTC: a typed refusal, not an OverflowError.
    for outside in (
        datetime(1, 1, 1, 0, 0, 25, tzinfo=timezone(timedelta(hours=12, minutes=56))),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=1))),
    ):
        with pytest.raises(ValidationFailed, match="years 1 to 9999"):
            timed.balance_at(wallet, outside)
        with pytest.raises(ValidationFailed, match="years 1 to 9999"):
            timed.expire_reservations(now=outside)
    assert timed.balance_at(wallet, clock["now"] + timedelta(days=1)).sequence == 3  # to come: the balance now
    assert timed.balance_at(wallet).sequence == 3  # no time: now
