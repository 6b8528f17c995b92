"""A wallet's journal, newest first, in keyset pages."""

from __future__ import annotations

from bson import Int64

from . import commands, documents
from .models import EntryPage
from .queries import Database
from .validation import encode_cursor
from .wallets import get_wallet


def list_transactions(db: Database, page: commands.Page) -> EntryPage:
    """A wallet's sequence numbers are dense (1..n, one per entry, written with the wallet in one
    transaction), so a page of the whole journal is the exact range (top - limit, top] below the
    wallet's sequence as just read, or below the cursor: one bounded index range, the same cost at
    any depth. A page of one entry type is a range scan from the cursor down."""
    wallet = get_wallet(db, page.wallet)
    query: dict = {"walletId": page.wallet.oid, "kind": documents.ENTRY}
    if page.kind is None:
        top = wallet.sequence if page.position is None else min(wallet.sequence, int(page.position) - 1)
        bottom = max(0, top - page.limit)
        query["sequence"] = {"$gt": Int64(bottom), "$lte": Int64(top)}
        found = db.read(lambda: list(db.ledger.find(query).sort("sequence", -1)))
        items = tuple(documents.entry_from_document(document) for document in found)
        more = bottom > 0
    else:
        query["type"] = page.kind.value
        if page.position is not None:
            query["sequence"] = {"$lt": Int64(int(page.position))}
        found = db.read(lambda: list(db.ledger.find(query).sort("sequence", -1).limit(page.limit + 1)))
        items = tuple(documents.entry_from_document(document) for document in found[: page.limit])
        more = len(found) > page.limit
    next_cursor = encode_cursor(page.cursor_scope, items[-1].sequence) if more and items else None
    return EntryPage(items=items, next_cursor=next_cursor)
