"""The database steps of the use cases: each one command (a few for expiry), named for what it does.

Every step that changes money runs inside the caller's transaction (`session`). A step that
finds nothing to change returns None; deciding why (not found, frozen, not enough money) is the
use case's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bson import Int64, ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database as MongoDatabase
from pymongo.errors import BulkWriteError
from pymongo.read_concern import ReadConcern

from ..ledger.limits import MAX_INT64
from ..ledger.models import OPEN_HOLD_STATUSES, WalletStatus
from ..ledger.postings import Posting, change
from . import documents
from .routing import route, scatter
from .targets import Targets
from .transactions import TransactionRunner, database_errors

AFTER = ReturnDocument.AFTER
DUPLICATE_KEY = 11000


class AlreadyRecorded(Exception):
    """The operation id already has a committed record: answer from it instead of moving money."""

    def __init__(self, operation_id: str, where: dict, record: dict | None = None) -> None:
        super().__init__(operation_id)
        self.operation_id = operation_id
        self.where = where  # the record's bucket, for a filter (Targets)
        self.record = record


class WalletTaken(Exception):
    """The owner has a wallet in that currency already (its claim exists)."""


@dataclass(frozen=True)
class Database:
    """What every use case works with: the collections, the transaction runner, the clock, the
    buckets each command names (`where`) and the zones the jobs batch by (routing.zones)."""

    wallets: Collection
    ledger: Collection
    records: Collection  # the ledger, read with majority read concern: only committed records
    accounts: Collection  # the registry of opened platform accounts, read with majority read concern
    runner: TransactionRunner
    clock: Callable[[], datetime]
    where: Targets
    zones: int = 1

    @classmethod
    def of(
        cls, database: MongoDatabase, *, time_budget: float, clock: Callable[[], datetime], zones: int = 1
    ) -> Database:
        database = database.with_options(codec_options=documents.CODEC_OPTIONS)
        wallets, ledger = database[documents.WALLETS], database[documents.LEDGER]
        return cls(
            wallets=wallets,
            ledger=ledger,
            records=ledger.with_options(read_concern=ReadConcern("majority")),
            accounts=database[documents.ACCOUNTS].with_options(read_concern=ReadConcern("majority")),
            runner=TransactionRunner(database.client, time_budget=time_budget),
            clock=clock,
            where=Targets(wallets, ledger, database[documents.ROUTING]),
            zones=zones,
        )

    def read[T](self, read: Callable[[], T]) -> T:
        """A read (or a single-document write) outside any transaction, its errors named."""
        with database_errors():
            return read()


# ---------------------------------------------------------------- wallets


def credit(
    db: Database, session: ClientSession, match: dict, postings: Sequence[Posting], now: datetime
) -> dict | None:
    """Apply postings that cannot overdraw (money coming in) to the wallet `match` finds, unless its
    balance would pass what Int64 holds (None then, as when it is not found)."""
    added = change(postings)
    room = {"balance": {"$lte": Int64(MAX_INT64 - added["balance"])}} if added["balance"] > 0 else {}
    return db.wallets.find_one_and_update(
        {**match, **room}, documents.wallet_update(now, added), return_document=AFTER, session=session
    )


def debit(
    db: Database,
    session: ClientSession,
    wallet_oid: ObjectId,
    owner_filter: dict,
    amount: int,
    postings: Sequence[Posting],
    now: datetime,
) -> dict | None:
    """Apply postings that take `amount` out of the available money of an active wallet; None when
    it does not exist (for this owner), is frozen or has less available."""
    return db.wallets.find_one_and_update(
        {
            "_id": wallet_oid,
            **db.where.wallet(wallet_oid),
            **owner_filter,
            "status": WalletStatus.ACTIVE.value,
            "$expr": {"$gte": [{"$subtract": ["$balance", "$held"]}, Int64(amount)]},
        },
        documents.wallet_update(now, change(postings)),
        return_document=AFTER,
        session=session,
    )


def reclaim(
    db: Database, session: ClientSession, wallet_oid: ObjectId, amount: int, postings: Sequence[Posting], now: datetime
) -> dict | None:
    """Take `amount` back out of a wallet a capture paid (a refund), whatever its status; None when
    it has less available."""
    return db.wallets.find_one_and_update(
        {
            "_id": wallet_oid,
            **db.where.wallet(wallet_oid),
            "$expr": {"$gte": [{"$subtract": ["$balance", "$held"]}, Int64(amount)]},
        },
        documents.wallet_update(now, change(postings)),
        return_document=AFTER,
        session=session,
    )


def settle(
    db: Database, session: ClientSession, wallet_oid: ObjectId, postings: Sequence[Posting], now: datetime
) -> dict | None:
    """Apply a hold's captured and released parts to its wallet, guarded on the wallet holding them
    (neither its held nor its balance may go below zero); None when it does not."""
    taken = change(postings)
    return db.wallets.find_one_and_update(
        {
            "_id": wallet_oid,
            **db.where.wallet(wallet_oid),
            "held": {"$gte": Int64(-taken["held"])},
            "balance": {"$gte": Int64(-taken["balance"])},
        },
        documents.wallet_update(now, taken),
        return_document=AFTER,
        session=session,
    )


def set_status(
    db: Database, session: ClientSession, wallet_oid: ObjectId, owner_filter: dict, status: WalletStatus, now
) -> dict | None:
    """Change the wallet's status; None when it is not found or has that status already."""
    return db.wallets.find_one_and_update(
        {"_id": wallet_oid, **db.where.wallet(wallet_oid), **owner_filter, "status": {"$ne": status.value}},
        [{"$set": {"status": status.value, "version": documents.NEXT_VERSION, "updatedAt": now}}],
        return_document=AFTER,
        session=session,
    )


# ---------------------------------------------------------------- reservations


def change_hold(
    db: Database,
    session: ClientSession,
    reservation_oid: ObjectId,
    owner_filter: dict,
    condition: dict,
    stages: list[dict],
    now: datetime,
) -> dict | None:
    """Apply a pipeline update to an open hold; the hold after it, or None when the hold is not open
    (or fails `condition`)."""
    return db.ledger.find_one_and_update(
        {
            "_id": reservation_oid,
            **db.where.hold(reservation_oid),
            "kind": documents.RESERVATION,
            **owner_filter,
            "status": {"$in": OPEN_HOLD_STATUSES},
            **condition,
        },
        [*stages, {"$set": {"updatedAt": now}}],
        return_document=AFTER,
        session=session,
    )


# ---------------------------------------------------------------- the ledger


def insert_movement(
    db: Database,
    session: ClientSession,
    record: dict,
    documents_: Sequence[dict],
    *,
    owners: Mapping[ObjectId, str],
    claim: dict | None = None,
    fallback_bucket: int | None = None,
) -> None:
    """Insert the operation record and everything a movement creates, in one command, each routed
    by its owner (routing.py: `owners` are the wallets the movement touched).

    The record goes first: a duplicate there means the operation id has already committed
    (AlreadyRecorded). A new wallet's claim goes second: a duplicate there means the owner has a
    wallet in that currency (WalletTaken)."""
    claims = [claim] if claim is not None else []
    inserted = [record, *claims, *documents_]
    route(inserted, owners, fallback=fallback_bucket)
    try:
        db.ledger.insert_many(inserted, ordered=True, session=session)
    except BulkWriteError as error:
        first = error.details["writeErrors"][0]
        if first["code"] == DUPLICATE_KEY and first["index"] == 0:
            raise AlreadyRecorded(record["_id"], db.where.of(record)) from error
        if first["code"] == DUPLICATE_KEY and claims and first["index"] == 1:
            raise WalletTaken from error
        raise


def find_record(db: Database, session: ClientSession | None, operation_id: str, where: dict) -> dict | None:
    """The operation record, if committed; `where` names its bucket (its owner's, Targets)."""
    collection = db.ledger if session is not None else db.records
    return collection.find_one({"_id": operation_id, **where, "kind": documents.OPERATION}, session=session)


# ---------------------------------------------------------------- expiry


def due_reservations(db: Database, cutoff: datetime, passed_over: list[ObjectId], limit: int) -> list[dict]:
    """The open holds due by `cutoff`, soonest first (their id, bucket, owner, captureTo): one clause per
    open status, so that each is read from its own partial index (indexes.LEDGER_INDEXES) and the
    two merged in order. Every owner's, so every shard's: one of the documented scatter reads."""
    clauses = []
    for status in OPEN_HOLD_STATUSES:
        clause: dict = {"kind": documents.RESERVATION, "status": status, "expiresAt": {"$lte": cutoff}}
        if passed_over:
            clause["_id"] = {"$nin": passed_over}
        clauses.append(clause)
    fields = {"bucket": 1, "ownerId": 1, "captureTo.walletId": 1}
    due = db.ledger.find({"$or": clauses}, fields, comment=scatter("due holds"))
    return db.read(lambda: list(due.sort("expiresAt", 1).limit(limit)))


def held_reservations(
    db: Database, session: ClientSession, ids: list[ObjectId], where: dict, cutoff: datetime
) -> list[dict]:
    query = {
        "_id": {"$in": ids},
        **where,
        "kind": documents.RESERVATION,
        "status": {"$in": OPEN_HOLD_STATUSES},
        "expiresAt": {"$lte": cutoff},
    }
    return list(db.ledger.find(query, session=session))


def wallets_by_id(db: Database, session: ClientSession, ids: list[ObjectId], where: dict) -> dict[ObjectId, dict]:
    found = db.wallets.find({"_id": {"$in": ids}, **where}, session=session)
    return {wallet["_id"]: wallet for wallet in found}


def end_holds(db: Database, session: ClientSession, ends: list[tuple[dict, dict]]) -> int:
    """Set each hold's new fields, guarded on its figures and status as read; the number changed."""
    updates = [
        UpdateOne(
            {
                "_id": hold["_id"],
                **db.where.of(hold),
                "kind": documents.RESERVATION,
                "status": hold["status"],
                "amount": hold["amount"],
                "capturedAmount": hold["capturedAmount"],
            },
            {"$set": fields},
        )
        for hold, fields in ends
    ]
    return db.ledger.bulk_write(updates, ordered=True, session=session).matched_count


def apply_to_wallets(db: Database, session: ClientSession, changes: list[tuple[dict, list[Posting]]], now) -> int:
    """Apply each wallet's postings, guarded on its held amount and sequence as read; the number applied."""
    updates = [
        UpdateOne(
            {"_id": wallet["_id"], **db.where.of(wallet), "held": wallet["held"], "sequence": wallet["sequence"]},
            documents.wallet_update(now, change(postings)),
        )
        for wallet, postings in changes
    ]
    return db.wallets.bulk_write(updates, ordered=True, session=session).matched_count
