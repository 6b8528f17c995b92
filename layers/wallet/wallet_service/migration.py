"""The one-off migration of a ledger written before double entry (single-entry: a deposit came
from nowhere, a withdrawal and a capture went nowhere) to double entry.

For every movement whose entries do not sum to zero, it adds the platform side the movement would
have had: a FUNDING on @funding for each DEPOSIT, a PAYOUT on @payouts for each WITHDRAWAL, a
CAPTURE_IN on @revenue for each CAPTURE. It also gives each wallet entry its wallet's currency, and
each captured hold the record of its capture (all of it to @revenue) and a refunded amount of 0.

Idempotent and safe to run beside live traffic: each added posting's id is derived from the entry
it balances (so a second run, or two at once, insert nothing twice), and a movement already
balanced is never touched. Each wallet is migrated in one transaction.
"""

from __future__ import annotations

import hashlib

from bson import Int64, ObjectId
from pymongo.client_session import ClientSession

from . import documents
from .models import EntryType, MigrationReport, ReservationStatus
from .postings import EFFECTS, FUNDING, PAYOUTS, REVENUE
from .queries import Database
from .transactions import database_errors

# The platform side of each single-entry posting: its entry type and account.
OTHER_SIDE = {
    EntryType.DEPOSIT: (EntryType.FUNDING, FUNDING),
    EntryType.WITHDRAWAL: (EntryType.PAYOUT, PAYOUTS),
    EntryType.CAPTURE: (EntryType.CAPTURE_IN, REVENUE),
}


def migrate_ledger(db: Database) -> MigrationReport:
    dated = added = holds = 0
    with database_errors():
        for wallet in db.read(lambda: list(db.wallets.find({}, {"currency": 1}))):
            counts = db.runner.run(lambda session, wallet=wallet: _migrate_wallet(db, session, wallet))
            dated, added, holds = dated + counts[0], added + counts[1], holds + counts[2]
    return MigrationReport(entries_dated=dated, postings_added=added, holds_updated=holds)


def _migrate_wallet(db: Database, session: ClientSession, wallet: dict) -> tuple[int, int, int]:
    currency = wallet["currency"]
    undated = {"walletId": wallet["_id"], "kind": documents.ENTRY, "currency": {"$exists": False}}
    dated = db.ledger.update_many(undated, {"$set": {"currency": currency}}, session=session).modified_count
    entries = list(db.ledger.find({"walletId": wallet["_id"], "kind": documents.ENTRY}, session=session))
    operations = {entry["operationId"] for entry in entries}
    totals = {
        row["_id"]: row["total"]
        for row in db.ledger.aggregate(
            [
                {"$match": {"kind": documents.ENTRY, "operationId": {"$in": sorted(operations)}}},
                {"$group": {"_id": "$operationId", "total": {"$sum": "$balanceDelta"}}},
            ],
            session=session,
        )
    }
    missing = [
        _other_side(entry, currency)
        for entry in entries
        if totals.get(entry["operationId"]) and EntryType(entry["type"]) in OTHER_SIDE
    ]
    added = _insert_new(db, session, missing)
    holds = 0
    for hold in db.ledger.find(
        {"walletId": wallet["_id"], "kind": documents.RESERVATION, "refundedAmount": {"$exists": False}},
        session=session,
    ):
        changes: dict = {"refundedAmount": Int64(0)}
        if hold["status"] == ReservationStatus.CAPTURED.value and "captures" not in hold:
            capture = {
                "id": _derived_id(f"{hold['_id']}:capture", hold["updatedAt"]),
                "amount": hold["capturedAmount"],
                "splits": [{"account": REVENUE, "amount": hold["capturedAmount"]}],
                "createdAt": hold["updatedAt"],
            }
            changes["captures"] = [capture]
        db.ledger.update_one({"_id": hold["_id"]}, {"$set": changes}, session=session)
        holds += 1
    return dated, added, holds


def _other_side(entry: dict, currency: str) -> dict:
    entry_type, account = OTHER_SIDE[EntryType(entry["type"])]
    posting = {
        "_id": _derived_id(f"{entry['_id']}:{account}", entry["createdAt"]),
        "kind": documents.ENTRY,
        "account": account,
        "currency": currency,
        "type": entry_type.value,
        "amount": entry["amount"],
        "balanceDelta": Int64(EFFECTS[entry_type].balance * entry["amount"]),
        "heldDelta": Int64(0),
        "metadata": entry.get("metadata", {}),
        "operationId": entry["operationId"],
        "createdAt": entry["createdAt"],
        "counterpartyWalletId": entry["walletId"],
    }
    for field in ("referenceType", "referenceId", "reservationId"):
        if field in entry:
            posting[field] = entry[field]
    return posting


def _derived_id(seed: str, created_at) -> ObjectId:
    """An ObjectId made from the time of what it balances and a hash of it: the same on every run,
    and ordered in time with the postings written since."""
    seconds = int(created_at.timestamp()).to_bytes(4, "big")
    return ObjectId(seconds + hashlib.sha256(seed.encode()).digest()[:8])


def _insert_new(db: Database, session: ClientSession, postings: list[dict]) -> int:
    """Insert the postings no earlier run inserted (a duplicate id means it did)."""
    if not postings:
        return 0
    known = {
        document["_id"]
        for document in db.ledger.find(
            {"_id": {"$in": [posting["_id"] for posting in postings]}}, {"_id": 1}, session=session
        )
    }
    new = [posting for posting in postings if posting["_id"] not in known]
    if new:  # a run inserting the same ids meanwhile is a write conflict: this one is retried, and finds them
        db.ledger.insert_many(new, ordered=True, session=session)
    return len(new)
