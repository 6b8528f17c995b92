"""Where things live in MongoDB, their indexes, and the mapping from documents to models.

Two collections:

- `wallets`: one document per wallet; the single point every money movement updates, so
  concurrent movements on one wallet collide there and one of them retries.
- `ledger`: everything a movement inserts, told apart by `kind`:
  `entry` (append-only journal entries), `reservation` (holds), `operation` (the record of
  one money-moving call: its idempotency key, request fingerprint and full result) and
  `wallet_claim` (one per owner and currency: its _id is the pair, so a second wallet is refused).
  Keeping them in one collection lets a movement write all of them with one insert command,
  so a deposit costs three round trips (wallet update, insert, commit) instead of five.
  The only TTL index covers operation records alone (it is partial on `kind`), on a field
  (`purgeAfter`) that no entry or reservation has, so nothing that holds money can vanish.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bson import CodecOptions, ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

from .models import LedgerEntry, Reservation, Wallet

WALLETS = "wallets"
LEDGER = "ledger"

ENTRY = "entry"
RESERVATION = "reservation"
OPERATION = "operation"
WALLET_CLAIM = "wallet_claim"

CODEC_OPTIONS = CodecOptions(tz_aware=True, tzinfo=UTC)

LEDGER_INDEXES = [
    # The listings lead with the wallet and the kind rather than being partial on the kind: every
    # server plans them alike (SecantusDB ignores partial indexes for range queries), at the price
    # of also holding the ledger's other documents (about twice the size on mongod).
    # The journal of a wallet, newest first, read as an exact range of its dense sequence numbers.
    # One entry per (wallet, sequence) is enforced by the entries' _id ("<walletId>:<sequence>").
    IndexModel([("walletId", ASCENDING), ("kind", ASCENDING), ("sequence", DESCENDING)], name="wallet_entries"),
    IndexModel(
        [("walletId", ASCENDING), ("kind", ASCENDING), ("type", ASCENDING), ("sequence", DESCENDING)],
        name="wallet_entries_by_type",
    ),
    IndexModel([("walletId", ASCENDING), ("kind", ASCENDING), ("_id", DESCENDING)], name="wallet_reservations"),
    IndexModel(
        [("walletId", ASCENDING), ("kind", ASCENDING), ("status", ASCENDING), ("_id", DESCENDING)],
        name="wallet_reservations_by_status",
    ),
    # Only the open holds, the ones the expiry job looks for: small whatever the ledger's size.
    IndexModel(
        [("expiresAt", ASCENDING)],
        partialFilterExpression={"kind": RESERVATION, "status": "HELD"},
        name="held_reservations_by_expiry",
    ),
    # Operation records (idempotency keys) may be purged once `purgeAfter` (>= 24 h after creation) has passed.
    IndexModel(
        [("purgeAfter", ASCENDING)],
        expireAfterSeconds=0,
        partialFilterExpression={"kind": OPERATION},
        name="operation_records_ttl",
    ),
]


def ensure_indexes(database: Database) -> None:
    """Create every index; a no-op when they exist, so it is safe on every cold start.

    `wallets` has no index but _id: every movement updates a wallet, and some servers rewrite all of
    a document's index entries on every update (SecantusDB re-claims a unique key each time, and can
    report a concurrent update as a duplicate key). One wallet per owner and currency is a
    `wallet_claim` in the ledger whose _id is the pair, inserted with the wallet."""
    database[LEDGER].create_indexes(LEDGER_INDEXES)


def wallet_claim_id(owner_id: str, currency: str) -> dict:
    """The _id that makes an owner's wallet in a currency unique (the _id index is unique everywhere)."""
    return {"ownerId": owner_id, "currency": currency}


def wallet_claim(owner_id: str, currency: str, wallet_id: ObjectId, now: datetime) -> dict:
    return {"_id": wallet_claim_id(owner_id, currency), "kind": WALLET_CLAIM, "walletId": wallet_id, "createdAt": now}


def _optional_id(value: ObjectId | None) -> str | None:
    return None if value is None else str(value)


def wallet_from_document(document: dict) -> Wallet:
    return Wallet(
        id=str(document["_id"]),
        owner_id=document["ownerId"],
        currency=document["currency"],
        balance=document["balance"],
        held=document["held"],
        status=document["status"],
        sequence=document["sequence"],
        created_at=document["createdAt"],
        updated_at=document["updatedAt"],
    )


def entry_from_document(document: dict) -> LedgerEntry:
    return LedgerEntry(
        id=str(document["_id"]),
        wallet_id=str(document["walletId"]),
        type=document["type"],
        amount=document["amount"],
        balance_delta=document["balanceDelta"],
        held_delta=document["heldDelta"],
        balance_after=document["balanceAfter"],
        held_after=document["heldAfter"],
        sequence=document["sequence"],
        reservation_id=_optional_id(document.get("reservationId")),
        counterparty_wallet_id=_optional_id(document.get("counterpartyWalletId")),
        reference_type=document.get("referenceType"),
        reference_id=document.get("referenceId"),
        metadata=document.get("metadata", {}),
        operation_id=document["operationId"],
        created_at=document["createdAt"],
    )


def reservation_from_document(document: dict) -> Reservation:
    return Reservation(
        id=str(document["_id"]),
        wallet_id=str(document["walletId"]),
        owner_id=document["ownerId"],
        currency=document["currency"],
        amount=document["amount"],
        captured_amount=document["capturedAmount"],
        released_amount=document["releasedAmount"],
        status=document["status"],
        expires_at=document["expiresAt"],
        reference_type=document.get("referenceType"),
        reference_id=document.get("referenceId"),
        metadata=document.get("metadata", {}),
        created_at=document["createdAt"],
        updated_at=document["updatedAt"],
    )


def utc_now_ms() -> datetime:
    """Now, truncated to the millisecond precision that BSON dates keep."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
