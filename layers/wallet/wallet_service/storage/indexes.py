"""The ledger's indexes: every query the service makes reads one (tests/service/test_query_plans.py)."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

from .documents import ENTRY, EVENT, LEDGER, OPERATION, RESERVATION

LEDGER_INDEXES = [
    # The listings lead with the wallet and the kind rather than being partial on the kind: every
    # server plans them alike (SecantusDB ignores partial indexes for range queries), at the price
    # of also holding the ledger's other documents (about twice the size on mongod).
    # The journal of a wallet, newest first, read as an exact range of its dense sequence numbers.
    # One entry per (wallet, sequence) is enforced by the entries' _id ("<walletId>:<sequence>").
    IndexModel([("walletId", ASCENDING), ("kind", ASCENDING), ("sequence", DESCENDING)], name="wallet_entries"),
    # A wallet's balance at a time: its last entry written by then.
    IndexModel(
        [("walletId", ASCENDING), ("kind", ASCENDING), ("createdAt", DESCENDING), ("sequence", DESCENDING)],
        name="wallet_entries_by_time",
    ),
    IndexModel(
        [("walletId", ASCENDING), ("kind", ASCENDING), ("type", ASCENDING), ("sequence", DESCENDING)],
        name="wallet_entries_by_type",
    ),
    # A platform account's postings per currency, newest first; and its balance: its checkpoint and
    # the postings since (checkpoints.py), an index of the tails alone.
    IndexModel([("account", ASCENDING), ("currency", ASCENDING), ("_id", DESCENDING)], name="account_entries"),
    IndexModel(
        [("account", ASCENDING), ("currency", ASCENDING)], partialFilterExpression={"tail": True}, name="account_tails"
    ),
    # Entries by time: the audit's recent ones (ledger_sums.py), few whatever the ledger's size. It leads
    # with the kind its filter fixes, so that a server planning only key fields (SecantusDB) reads it too.
    IndexModel(
        [("kind", ASCENDING), ("createdAt", ASCENDING)],
        partialFilterExpression={"kind": ENTRY},
        name="entries_by_time",
    ),
    IndexModel([("walletId", ASCENDING), ("kind", ASCENDING), ("_id", DESCENDING)], name="wallet_reservations"),
    IndexModel(
        [("walletId", ASCENDING), ("kind", ASCENDING), ("status", ASCENDING), ("_id", DESCENDING)],
        name="wallet_reservations_by_status",
    ),
    # Only the open holds, the ones the expiry job looks for: small whatever the ledger's size. One
    # index per open status (the job's query has a clause for each). Their keys differ: two indexes
    # on one key pattern are refused by older servers; the second leads with the fields its filter
    # fixes, so that a server planning only key fields (SecantusDB) reads it too.
    IndexModel(
        [("expiresAt", ASCENDING)],
        partialFilterExpression={"kind": RESERVATION, "status": "HELD"},
        name="held_reservations_by_expiry",
    ),
    IndexModel(
        [("kind", ASCENDING), ("status", ASCENDING), ("expiresAt", ASCENDING)],
        partialFilterExpression={"kind": RESERVATION, "status": "PARTIALLY_CAPTURED"},
        name="partially_captured_reservations_due",
    ),
    # The outbox: events not yet published, per wallet in order, and the oldest first (the
    # scheduled publisher). Small whatever the ledger's size: published events leave them.
    IndexModel(
        [("walletId", ASCENDING), ("version", ASCENDING), ("index", ASCENDING)],
        partialFilterExpression={"kind": EVENT, "sent": False},
        name="unsent_events_by_wallet",
    ),
    IndexModel(
        [("createdAt", ASCENDING)], partialFilterExpression={"kind": EVENT, "sent": False}, name="unsent_events_by_age"
    ),
    # Operation records (idempotency keys) may be purged once `purgeAfter` (>= 24 h after creation) has passed.
    IndexModel(
        [("purgeAfter", ASCENDING)],
        expireAfterSeconds=0,
        partialFilterExpression={"kind": OPERATION},
        name="operation_records_ttl",
    ),
]


# Indexes an earlier version made, dropped by ensure_indexes: the partially captured holds' on
# (status, expiresAt), which a server planning only key fields could not read for the due holds; the
# unsent events' by operation id, which publishers read before they knew their committed events.
RETIRED_INDEXES = ("partially_captured_reservations_by_expiry", "unsent_events_by_operation")


def ensure_indexes(database: Database) -> None:
    """Create every index; a no-op when they exist, so it is safe on every cold start.

    `wallets` has no index but _id: every movement updates a wallet, and some servers rewrite all of
    a document's index entries on every update (SecantusDB re-claims a unique key each time, and can
    report a concurrent update as a duplicate key). One wallet per owner and currency is a
    `wallet_claim` in the ledger whose _id is the pair, inserted with the wallet."""
    database[LEDGER].create_indexes(LEDGER_INDEXES)
    for name in set(RETIRED_INDEXES) & set(database[LEDGER].index_information()):
        database[LEDGER].drop_index(name)
