"""The documents: where things live in MongoDB (their indexes are in indexes.py) and how each
document is built (answers.py turns them into the models the service answers with).

Two collections:

- `wallets`: one document per wallet; the single point every money movement updates, so
  concurrent movements on one wallet collide there and one of them retries.
- `ledger`: everything a movement inserts, told apart by `kind`: `entry` (append-only journal
  entries: a wallet's, with `walletId` and its `sequence`, or a platform account's, with `account`;
  each with its `currency`), `reservation` (holds), `operation` (the record of one money-moving
  call: its idempotency key, request fingerprint and full result), `event` (the outbox),
  `wallet_claim` (its _id is an owner and a currency, so a second wallet is refused) and
  `checkpoint` (a platform account's balance up to its last roll, per currency: checkpoints.py).
  Keeping them in one collection lets a movement write all of them with one insert command,
  so a deposit costs three round trips (wallet update, insert, commit) instead of five.
  The only TTL index covers operation records alone (it is partial on `kind`), on a field
  (`purgeAfter`) that no entry or reservation has, so nothing that holds money can vanish.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bson import CodecOptions, Int64, ObjectId

from ..ledger.limits import IDEMPOTENCY_RETENTION
from ..ledger.models import ReservationStatus, WalletStatus
from ..ledger.postings import Details, Posted, Posting, WalletState
from .routing import bucket_of, new_id

WALLETS = "wallets"
LEDGER = "ledger"
# The registry of the platform accounts administrators opened: one document each, its _id the
# account's name and currency. Unique across a sharded cluster and routed by no owner, so a small
# collection of its own that is never sharded (sharding.md).
ACCOUNTS = "accounts"
# Whether the commands name their documents' buckets yet (targets.py): one marker, never sharded.
ROUTING = "routing"

ENTRY = "entry"
RESERVATION = "reservation"
OPERATION = "operation"
WALLET_CLAIM = "wallet_claim"
EVENT = "event"
CHECKPOINT = "checkpoint"

CODEC_OPTIONS = CodecOptions(tz_aware=True, tzinfo=UTC)


def wallet_claim_id(owner_id: str, currency: str) -> dict:
    """The _id that makes an owner's wallet in a currency unique (the _id index is unique everywhere)."""
    return {"ownerId": owner_id, "currency": currency}


def wallet_claim(owner_id: str, currency: str, wallet_id: ObjectId, now: datetime) -> dict:
    return {"_id": wallet_claim_id(owner_id, currency), "kind": WALLET_CLAIM, "walletId": wallet_id, "createdAt": now}


def platform_account_id(name: str, currency: str) -> dict:
    return {"account": name, "currency": currency}


def platform_account(name: str, currency: str, now: datetime) -> dict:
    """An account an administrator opened; the built-in ones have no document."""
    return {"_id": platform_account_id(name, currency), "createdAt": now}


# ---------------------------------------------------------------- building documents


def new_wallet(owner_id: str, currency: str, state: WalletState, now: datetime) -> dict:
    """A wallet with the counters its first postings (an opening balance) leave it with; its id
    carries its owner's bucket (routing.py)."""
    return {
        "_id": new_id(bucket_of(owner_id)),
        "ownerId": owner_id,
        "currency": currency,
        "balance": Int64(state.balance),
        "held": Int64(state.held),
        "status": WalletStatus.ACTIVE.value,
        "sequence": Int64(state.sequence),
        "version": Int64(1),
        "createdAt": now,
        "updatedAt": now,
    }


def wallet_update(now: datetime, change: dict[str, int]) -> list[dict]:
    """A pipeline update adding `change` to a wallet's counters.

    MongoDB keeps long + long as long, but turns a sum past Int64 into a double; $toLong makes
    that an error (ConversionFailure) instead of a balance that is silently no longer exact."""
    fields = {name: {"$toLong": {"$add": [f"${name}", Int64(delta)]}} for name, delta in change.items() if delta}
    return [{"$set": {**fields, "version": NEXT_VERSION, "updatedAt": now}}]


# Every change of a wallet document adds one to its `version` (a wallet from before versions counts
# from 0): the order of its events (outbox.py).
NEXT_VERSION = {"$toLong": {"$add": [{"$ifNull": ["$version", 0]}, 1]}}


def details_fields(details: Details) -> dict:
    fields: dict = {"metadata": details.metadata}
    if details.reference_type is not None:
        fields["referenceType"] = details.reference_type
    if details.reference_id is not None:
        fields["referenceId"] = details.reference_id
    return fields


def journal_entries(
    wallet_id: ObjectId, currency: str, posted: Sequence[Posted], operation_id: str, now: datetime
) -> list[dict]:
    """The entry documents of postings placed in one wallet's journal. An entry's _id is the wallet
    id and its sequence number: one entry per wallet position, enforced by the _id index."""
    entries = []
    for item in posted:
        posting = item.posting
        entry = {
            "_id": f"{wallet_id}:{item.sequence}",
            "kind": ENTRY,
            "walletId": wallet_id,
            "currency": currency,
            "type": posting.type.value,
            "amount": Int64(posting.amount),
            "balanceDelta": Int64(posting.balance_delta),
            "heldDelta": Int64(posting.held_delta),
            "balanceAfter": Int64(item.balance_after),
            "heldAfter": Int64(item.held_after),
            "sequence": Int64(item.sequence),
            **_posting_fields(posting, operation_id, now),
        }
        entries.append(entry)
    return entries


def account_entries(currency: str, postings: Sequence[Posting], operation_id: str, now: datetime) -> list[dict]:
    """The entry documents of postings on platform accounts: `account` names the account; no
    sequence, no after-values (nothing is updated). `walletId` is absent, `counterpartyWalletId`
    names the wallet on the other side. `tail` is true until it is rolled into a checkpoint."""
    entries = []
    for posting in postings:
        entry = {
            "_id": ObjectId(),
            "kind": ENTRY,
            "account": posting.account,
            "currency": currency,
            "type": posting.type.value,
            "amount": Int64(posting.amount),
            "balanceDelta": Int64(posting.balance_delta),
            "heldDelta": Int64(posting.held_delta),
            "tail": True,
            **_posting_fields(posting, operation_id, now),
        }
        entries.append(entry)
    return entries


def _posting_fields(posting: Posting, operation_id: str, now: datetime) -> dict:
    """What every entry carries of its posting and its movement, wallet's and platform account's alike."""
    fields = {**details_fields(posting.details), "operationId": operation_id, "createdAt": now}
    if posting.reservation_id is not None:
        fields["reservationId"] = posting.reservation_id
    if posting.counterparty_wallet_id is not None:
        fields["counterpartyWalletId"] = posting.counterparty_wallet_id
    return fields


def assert_balanced(entries: Sequence[dict]) -> None:
    """A movement's entries sum to zero per currency; anything else is a bug, never written."""
    totals: dict[str, int] = {}
    for entry in entries:
        totals[entry["currency"]] = totals.get(entry["currency"], 0) + entry["balanceDelta"]
    unbalanced = {currency: total for currency, total in totals.items() if total}
    if unbalanced:
        raise AssertionError(f"unbalanced movement: {unbalanced}")


def new_reservation(
    wallet: dict,
    amount: int,
    expires_at: datetime,
    on_expiry: dict,
    details: Details,
    operation_id: str,
    now: datetime,
) -> dict:
    """A hold just placed; `on_expiry` is `{"onExpiry": ...}` and, for a capture, its `captureTo`. Its
    id carries its owner's bucket (routing.py)."""
    return {
        "_id": new_id(bucket_of(wallet["ownerId"])),
        "kind": RESERVATION,
        "walletId": wallet["_id"],
        "ownerId": wallet["ownerId"],
        "currency": wallet["currency"],
        "amount": Int64(amount),
        "capturedAmount": Int64(0),
        "releasedAmount": Int64(0),
        "refundedAmount": Int64(0),
        "increments": [],
        "captures": [],
        "status": ReservationStatus.HELD.value,
        "expiresAt": expires_at,
        **on_expiry,
        **details_fields(details),
        "operationId": operation_id,
        "createdAt": now,
        "updatedAt": now,
    }


def operation_record(operation: str, operation_id: str, now: datetime, **fields) -> dict:
    """The record of one money-moving call (or expiry batch), kept IDEMPOTENCY_RETENTION: its _id is
    the operation id, its `fields` what answering it again takes."""
    return {
        "_id": operation_id,
        "kind": OPERATION,
        "operation": operation,
        **fields,
        "createdAt": now,
        "purgeAfter": now + IDEMPOTENCY_RETENTION,
    }


def utc_now_ms() -> datetime:
    """Now, truncated to the millisecond precision that BSON dates keep."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def wallet_state(document: dict) -> WalletState:
    return WalletState(document["balance"], document["held"], document["sequence"])
