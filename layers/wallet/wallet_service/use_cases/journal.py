"""A wallet's journal, newest first, in keyset pages, and its balance at any time."""

from __future__ import annotations

from bson import Int64

from ..ledger import answers, reads
from ..ledger.models import EntryPage, WalletBalance
from ..ledger.validation import encode_cursor
from ..storage import documents
from ..storage.queries import Database
from .wallets import get_wallet


def list_transactions(db: Database, page: reads.Page) -> EntryPage:
    """A wallet's sequence numbers are dense (1..n, one per entry, written with the wallet in one
    transaction), so a page of the whole journal is the exact range (top - limit, top] below the
    wallet's sequence as just read, or below the cursor: one bounded index range, the same cost at
    any depth. A page of one entry type is a range scan from the cursor down."""
    wallet = get_wallet(db, page.wallet)
    page.refuse_a_bad_cursor()
    query: dict = {"walletId": page.wallet.oid, **db.where.wallet(page.wallet.oid), "kind": documents.ENTRY}
    if page.kind is None:
        top = wallet.sequence if page.position is None else min(wallet.sequence, int(page.position) - 1)
        bottom = max(0, top - page.limit)
        query["sequence"] = {"$gt": Int64(bottom), "$lte": Int64(top)}
        found = db.read(lambda: list(db.ledger.find(query).sort("sequence", -1)))
        items = tuple(answers.entry_from_document(document) for document in found)
        more = bottom > 0
    else:
        query["type"] = page.kind.value
        if page.position is not None:
            query["sequence"] = {"$lt": Int64(int(page.position))}
        found = db.read(lambda: list(db.ledger.find(query).sort("sequence", -1).limit(page.limit + 1)))
        items = tuple(answers.entry_from_document(document) for document in found[: page.limit])
        more = len(found) > page.limit
    next_cursor = encode_cursor(page.cursor_scope, items[-1].sequence) if more and items else None
    return EntryPage(items=items, next_cursor=next_cursor)


def balance_at(db: Database, wallet: reads.One, at) -> WalletBalance:
    """The wallet's balance, held and available as they were at `at`: the after-values of its last
    entry written at or before then (none: all zero), read from one index range of
    `wallet_entries_by_time`."""
    get_wallet(db, wallet)
    query = {"walletId": wallet.oid, **db.where.wallet(wallet.oid), "kind": documents.ENTRY, "createdAt": {"$lte": at}}
    order = [("createdAt", -1), ("sequence", -1)]
    last = db.read(lambda: db.ledger.find_one(query, sort=order))
    balance, held, sequence = (0, 0, 0) if last is None else (last["balanceAfter"], last["heldAfter"], last["sequence"])
    return WalletBalance(wallet_id=wallet.id, at=at, balance=balance, held=held, sequence=sequence)
