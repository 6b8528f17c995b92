"""The one-off migration of a ledger written before double entry (single-entry: a deposit came
from nowhere, a withdrawal and a capture went nowhere) to double entry.

Such a ledger's entries have no `currency` (every entry written since has one), so what needs
migrating is told apart without a transaction and safely beside live traffic: one aggregation
finds the movements with such entries whose postings do not sum to zero, and each gets the
platform side it would have had: a FUNDING on @funding for each DEPOSIT, a PAYOUT on @payouts for
each WITHDRAWAL, a CAPTURE_IN on @revenue for each CAPTURE. Then each wallet's old entries get its
currency, and each old hold a refunded amount of 0 and, when captured, the record of its capture
(all of it to @revenue).

Then the accounts administrators opened move from the ledger (`kind: platform_account`, as they
were recorded before) to their registry, `accounts`. Last, every document written before the
routing key (storage/routing.py) gets its owner's `bucket`: each wallet, and each ledger document
that belongs to an owner (what belongs to none, a checkpoint, is left as it is). Then the marker
says so (storage/targets.py), listing the ids minted before that look as if they carried a bucket
other than their document's, and commands start naming their buckets.

Idempotent and restartable: each added posting's id is derived from the entry it balances (a run
stopped half-way, run again, inserts nothing twice), entries are dated only after their movement
is balanced, and a document is routed only while it has no bucket, so a second run finds nothing
to do.
"""

from __future__ import annotations

import contextlib
import hashlib

from bson import Int64, ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ..ledger.models import EntryType, ReservationStatus
from ..ledger.postings import EFFECTS, FUNDING, PAYOUTS, REVENUE
from ..ledger.reports import MigrationReport
from ..storage import documents
from ..storage.queries import DUPLICATE_KEY, Database
from ..storage.routing import bucket_in, bucket_of, owner_of, route, scatter
from ..storage.transactions import database_errors

# The platform side of each single-entry posting: its entry type and account.
OTHER_SIDE = {
    EntryType.DEPOSIT: (EntryType.FUNDING, FUNDING),
    EntryType.WITHDRAWAL: (EntryType.PAYOUT, PAYOUTS),
    EntryType.CAPTURE: (EntryType.CAPTURE_IN, REVENUE),
}
BATCH = 1_000
EVERY_SHARD = scatter("migration")
OLD_ACCOUNT_KIND = "platform_account"  # an opened account, as the ledger recorded it before `accounts`


def migrate_ledger(db: Database) -> MigrationReport:
    with database_errors():
        wallets = list(db.wallets.find({}, {"currency": 1, "ownerId": 1}, comment=EVERY_SHARD))
        currencies = {wallet["_id"]: wallet["currency"] for wallet in wallets}
        owners = {wallet["_id"]: wallet["ownerId"] for wallet in wallets}
        added = _balance_old_movements(db, currencies, owners)
        dated = sum(
            db.ledger.update_many(
                {"walletId": wallet_id, "kind": documents.ENTRY, "currency": {"$exists": False}},
                {"$set": {"currency": currency}},
                comment=EVERY_SHARD,  # its wallet may have no bucket yet
            ).modified_count
            for wallet_id, currency in currencies.items()
        )
        holds = _update_old_holds(db)
        moved = _move_opened_accounts(db)
        routed = _route_old_documents(db.wallets, owners) + _route_old_documents(db.ledger, owners)
        db.where.mark_routed(_misleading_ids(db), db.clock())
    return MigrationReport(
        entries_dated=dated, postings_added=added, holds_updated=holds, accounts_moved=moved, documents_routed=routed
    )


def _move_opened_accounts(db: Database) -> int:
    """Each opened account recorded in the ledger into the registry (a duplicate: an earlier run
    put it there), then out of the ledger."""
    moved = 0
    for document in db.ledger.find({"kind": OLD_ACCOUNT_KIND}, comment=EVERY_SHARD):
        with contextlib.suppress(DuplicateKeyError):
            db.accounts.insert_one({"_id": document["_id"], "createdAt": document["createdAt"]})
        old = {"_id": document["_id"], "kind": OLD_ACCOUNT_KIND}
        moved += db.ledger.delete_one(old, comment=EVERY_SHARD).deleted_count
    return moved


def _misleading_ids(db: Database) -> list[ObjectId]:
    """The wallets' and holds' ids that carry a bucket other than their document's: minted before
    routing.new_id, tagged by chance (about 1 in 16,000)."""
    found = []
    for collection, query in ((db.wallets, {}), (db.ledger, {"kind": documents.RESERVATION})):
        for document in collection.find(query, {"bucket": 1}, comment=EVERY_SHARD):
            carried = bucket_in(document["_id"])
            if carried is not None and carried != document.get("bucket"):
                found.append(document["_id"])
    return found


def _route_old_documents(collection, owners: dict) -> int:
    """Give each document of `collection` without a bucket its owner's (routing.owner_of), a batch
    of updates at a time, each guarded on the bucket still missing."""
    fields = {"ownerId": 1, "walletId": 1, "counterpartyWalletId": 1}
    unrouted = collection.find({"bucket": {"$exists": False}}, fields, comment=EVERY_SHARD)
    routed = 0
    updates = []
    for document in unrouted:
        owner = owner_of(document, owners)
        if owner is not None:
            guard = {"_id": document["_id"], "bucket": {"$exists": False}}
            updates.append(UpdateOne(guard, {"$set": {"bucket": bucket_of(owner)}}))
        if len(updates) == BATCH:
            routed += collection.bulk_write(updates, ordered=False, comment=EVERY_SHARD).modified_count
            updates = []
    if updates:
        routed += collection.bulk_write(updates, ordered=False, comment=EVERY_SHARD).modified_count
    return routed


def _balance_old_movements(db: Database, currencies: dict, owners: dict) -> int:
    unbalanced = [
        row["_id"]
        for row in db.ledger.aggregate(
            [
                {"$match": {"kind": documents.ENTRY}},
                {
                    "$group": {
                        "_id": "$operationId",
                        "total": {"$sum": "$balanceDelta"},
                        "old": {"$max": {"$cond": [{"$eq": [{"$type": "$currency"}, "missing"]}, 1, 0]}},
                    }
                },
                {"$match": {"old": 1, "total": {"$ne": 0}}},
            ],
            allowDiskUse=True,
            comment=EVERY_SHARD,
        )
    ]
    added = 0
    for start in range(0, len(unbalanced), BATCH):
        query = {
            "kind": documents.ENTRY,
            "operationId": {"$in": unbalanced[start : start + BATCH]},
            "currency": {"$exists": False},
            "type": {"$in": [entry_type.value for entry_type in OTHER_SIDE]},
        }
        postings = [
            _other_side(entry, currencies[entry["walletId"]]) for entry in db.ledger.find(query, comment=EVERY_SHARD)
        ]
        route(postings, owners)
        added += _insert_new(db, postings)
    return added


def _update_old_holds(db: Database) -> int:
    updates = []
    old_holds = {"kind": documents.RESERVATION, "refundedAmount": {"$exists": False}}
    for hold in db.ledger.find(old_holds, comment=EVERY_SHARD):
        changes: dict = {"refundedAmount": Int64(0)}
        if hold["status"] == ReservationStatus.CAPTURED.value and "captures" not in hold:
            capture = {
                "id": _derived_id(f"{hold['_id']}:capture", hold["updatedAt"]),
                "amount": hold["capturedAmount"],
                "splits": [{"account": REVENUE, "amount": hold["capturedAmount"]}],
                "createdAt": hold["updatedAt"],
            }
            changes["captures"] = [capture]
        updates.append(UpdateOne({"_id": hold["_id"], "refundedAmount": {"$exists": False}}, {"$set": changes}))
    return db.ledger.bulk_write(updates, ordered=False, comment=EVERY_SHARD).modified_count if updates else 0


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
        "tail": True,  # not in its account's checkpoint yet (checkpoints.py)
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


def _insert_new(db: Database, postings: list[dict]) -> int:
    """Insert the postings no earlier run inserted (a duplicate id means one did)."""
    if not postings:
        return 0
    try:
        return len(db.ledger.insert_many(postings, ordered=False).inserted_ids)
    except BulkWriteError as error:
        if any(failure["code"] != DUPLICATE_KEY for failure in error.details["writeErrors"]):
            raise
        return error.details["nInserted"]
