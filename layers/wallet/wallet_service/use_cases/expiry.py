"""The expiry job: every open hold whose time has come is expired, one transaction per batch: what
it still holds is released, or, for a hold placed with onExpiry capture, captured to its
`captureTo` (a platform account, or a wallet credited in the same transaction).

Each batch stays on one shard of a sharded cluster: the holds due (one read of every shard) are
batched by the zone of their bucket (routing.zones, Database.zones), and a hold that captures to a
wallet in another zone is a batch of its own. On a replica set (one zone) a read's due holds are
one batch.

Safe to run concurrently with itself and with captures and releases: a hold stops being open only
inside a transaction that also moves its money, so each hold's money moves once. A hold that cannot
be expired (its wallet is missing or holds less than it should) is left open, logged and reported
as skipped; a batch that keeps failing is reported as failed. Neither is tried again in the run.
Each batch writes an operation record with its counts, so a batch whose commit's outcome was
unknown reports, when retried, what it did. The report names the operation ids of the batches that
expired holds, by which their events are published.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from bson import Int64, ObjectId
from pymongo.client_session import ClientSession
from pymongo.errors import PyMongoError

from ..ledger import commands
from ..ledger.models import EntryType, OnExpiry, ReservationStatus
from ..ledger.postings import Details, Posting, change, post
from ..ledger.reports import ExpiryReport
from ..storage import documents, outbox, queries
from ..storage.queries import Database
from ..storage.routing import bucket_of, zone_of
from ..storage.transactions import RetryTransaction

logger = logging.getLogger("wallet_service")

OPERATION = "expire_reservations"


@dataclass(slots=True)
class Batch:
    """One expiry transaction's work, shared by its attempts."""

    operation_id: str
    due: list[ObjectId]
    buckets: list[int | None]  # each due hold's
    bucket: int  # its record's: the first hold's owner's
    cutoff: datetime
    attempts: int = 0

    @classmethod
    def of(cls, holds: list[dict], cutoff: datetime) -> Batch:
        ids, buckets = [hold["_id"] for hold in holds], [hold.get("bucket") for hold in holds]
        return cls(f"expiry:{uuid.uuid4().hex}", ids, buckets, bucket_of(holds[0]["ownerId"]), cutoff)


def expire_reservations(db: Database, command: commands.Expiry, time_limit: float) -> ExpiryReport:
    """Expire every due hold, a batch at a time; no batch starts after `time_limit` seconds."""
    cutoff = db.clock() if command.cutoff is None else command.cutoff
    stop_at = time.monotonic() + time_limit
    expired = 0
    operation_ids: list[str] = []
    passed_over: list[ObjectId] = []
    skipped: list[str] = []
    failed: list[str] = []
    while time.monotonic() < stop_at:
        due = queries.due_reservations(db, cutoff, passed_over, command.batch_size)
        if not due:
            break
        for holds in by_shard(db, due):
            if time.monotonic() >= stop_at:
                break
            batch = Batch.of(holds, cutoff)
            try:
                count, unexpirable = db.runner.run(
                    lambda session, batch=batch: expire_batch(db, session, batch), wait_out_conflicts=True
                )
            except (PyMongoError, RetryTransaction):
                logger.exception("expiry batch of %d holds failed; they stay open until the next run", len(holds))
                failed.extend(str(reservation_id) for reservation_id in batch.due)
                passed_over.extend(batch.due)
                continue
            expired += count
            if count:
                operation_ids.append(batch.operation_id)
            skipped.extend(str(reservation_id) for reservation_id in unexpirable)
            passed_over.extend(unexpirable)
    return ExpiryReport(
        expired=expired,
        skipped=len(skipped),
        failed=len(failed),
        skipped_reservation_ids=tuple(skipped),
        failed_reservation_ids=tuple(failed),
        operation_ids=tuple(operation_ids),
    )


def by_shard(db: Database, due: list[dict]) -> list[list[dict]]:
    """The due holds in batches that each stay on one shard: one per zone of their buckets, and one
    for each hold that captures to a wallet in another zone than its own."""
    batches: dict[object, list[dict]] = {}
    for hold in due:
        zone = zone_of(hold.get("bucket"), db.zones)
        payee = hold.get("captureTo", {}).get("walletId")
        alone = db.zones > 1 and payee is not None and zone_of(db.where.wallet_bucket(payee), db.zones) != zone
        batches.setdefault(hold["_id"] if alone else zone, []).append(hold)
    return list(batches.values())


def expire_batch(db: Database, session: ClientSession, batch: Batch) -> tuple[int, list[ObjectId]]:
    """Expire one batch; returns (holds expired, holds that cannot be expired)."""
    if batch.attempts > 0:
        # A retry after a commit whose outcome was unknown: if it did commit, report what it did.
        record = queries.find_record(db, session, batch.operation_id, db.where.bucket(batch.bucket))
        if record is not None:
            return record["expired"], record["skippedReservationIds"]
    batch.attempts += 1
    now = db.clock()
    holds = queries.held_reservations(db, session, batch.due, db.where.among(batch.buckets), batch.cutoff)
    if not holds:
        return 0, []
    payees = [hold["captureTo"]["walletId"] for hold in holds if "walletId" in hold.get("captureTo", {})]
    buckets = [*(hold.get("bucket") for hold in holds), *(db.where.wallet_bucket(payee) for payee in payees)]
    wallet_ids = list({*(hold["walletId"] for hold in holds), *payees})
    wallets = queries.wallets_by_id(db, session, wallet_ids, db.where.among(buckets))
    ends, unexpirable = _ends(holds, wallets, now)
    if not ends:
        return 0, unexpirable
    if queries.end_holds(db, session, [(end.hold, end.fields) for end in ends]) != len(ends):
        raise RetryTransaction("holds changed during expiry")
    postings: dict[ObjectId, list[Posting]] = {}
    account_postings: list[tuple[str, Posting]] = []
    for end in ends:
        postings.setdefault(end.hold["walletId"], []).extend(end.own)
        if end.payee is not None and "walletId" in end.payee:
            postings.setdefault(end.payee["walletId"], []).append(end.payee_posting)
        elif end.payee is not None:
            account_postings.append((end.hold["currency"], end.payee_posting))
    changes = [(wallets[wallet_id], wallet_postings) for wallet_id, wallet_postings in postings.items()]
    # Guarded on the held amount and sequence read: a wallet changed since then fails the batch, which is retried.
    if queries.apply_to_wallets(db, session, changes, now) != len(changes):
        raise RetryTransaction("wallets changed during expiry")
    entries = [
        entry
        for wallet, wallet_postings in changes
        for entry in documents.journal_entries(
            wallet["_id"],
            wallet["currency"],
            post(documents.wallet_state(wallet), wallet_postings),
            batch.operation_id,
            now,
        )
    ]
    for currency, posting in account_postings:
        entries.extend(documents.account_entries(currency, [posting], batch.operation_id, now))
    documents.assert_balanced(entries)
    after = [_after(wallet, wallet_postings, now) for wallet, wallet_postings in changes]
    hold_ids = [end.hold["_id"] for end in ends]
    entries.extend(outbox.movement_events(OPERATION, batch.operation_id, now, after, entries, reservation_ids=hold_ids))
    record = documents.operation_record(
        OPERATION, batch.operation_id, now, expired=len(ends), skippedReservationIds=unexpirable
    )
    owners = {wallet["_id"]: wallet["ownerId"] for wallet in wallets.values()}
    queries.insert_movement(db, session, record, entries, owners=owners, fallback_bucket=batch.bucket)
    return len(ends), unexpirable


def _after(wallet: dict, postings: list[Posting], now: datetime) -> dict:
    """The wallet document as the batch's update leaves it."""
    changed = change(postings)
    return {
        **wallet,
        "balance": wallet["balance"] + changed["balance"],
        "held": wallet["held"] + changed["held"],
        "sequence": wallet["sequence"] + changed["sequence"],
        "version": wallet.get("version", 0) + 1,
        "updatedAt": now,
    }


@dataclass(slots=True)
class End:
    """How one hold ends at expiry: its new fields, its wallet's postings, and, for a capture, the
    place paid (`captureTo`) and its posting."""

    hold: dict
    fields: dict
    own: list[Posting]
    payee: dict | None = None
    payee_posting: Posting | None = None


def _ends(holds: list[dict], wallets: dict[ObjectId, dict], now: datetime) -> tuple[list[End], list[ObjectId]]:
    """Each hold's end, but for the holds whose wallet is missing or holds less than its holds do
    (nothing of that wallet's holds moves; they stay open, logged and reported as skipped)."""
    by_wallet: dict[ObjectId, list[End]] = {}
    for hold in holds:
        by_wallet.setdefault(hold["walletId"], []).append(_end(hold, now))
    ends: list[End] = []
    unexpirable: list[ObjectId] = []
    for wallet_id, wallet_ends in by_wallet.items():
        wallet = wallets.get(wallet_id)
        taken = change([posting for end in wallet_ends for posting in end.own])
        payees_missing = [
            end
            for end in wallet_ends
            if end.payee is not None and "walletId" in end.payee and end.payee["walletId"] not in wallets
        ]
        if (
            wallet is None
            or wallet["held"] + taken["held"] < 0
            or wallet["balance"] + taken["balance"] < 0
            or payees_missing
        ):
            logger.error(
                "cannot expire holds %s: wallet %s %s",
                [str(end.hold["_id"]) for end in wallet_ends],
                wallet_id,
                "is missing"
                if wallet is None
                else f"holds {wallet['held']}, its holds {-taken['held']}, or a payee is missing",
            )
            unexpirable.extend(end.hold["_id"] for end in wallet_ends)
        else:
            ends.extend(wallet_ends)
    return ends, unexpirable


def _end(hold: dict, now: datetime) -> End:
    still_held = hold["amount"] - hold["capturedAmount"] - hold["releasedAmount"]
    details = Details(hold.get("referenceType"), hold.get("referenceId"), {})
    fields: dict = {"status": ReservationStatus.EXPIRED.value, "updatedAt": now}
    if hold.get("onExpiry") != OnExpiry.CAPTURE.value:
        fields["releasedAmount"] = Int64(hold["releasedAmount"] + still_held)
        own = [Posting(EntryType.EXPIRE, still_held, details, reservation_id=hold["_id"])] if still_held else []
        return End(hold, fields, own)
    payee = hold["captureTo"]
    capture = {"id": ObjectId(), "amount": Int64(still_held), "splits": [{**payee, "amount": Int64(still_held)}]}
    fields["capturedAmount"] = Int64(hold["capturedAmount"] + still_held)
    fields["captures"] = [*hold.get("captures", []), {**capture, "final": True, "createdAt": now}]
    own = [Posting(EntryType.CAPTURE, still_held, details, reservation_id=hold["_id"])]
    payee_posting = Posting(
        EntryType.CAPTURE_IN,
        still_held,
        details,
        reservation_id=hold["_id"],
        counterparty_wallet_id=hold["walletId"],
        account=payee.get("account"),
    )
    return End(hold, fields, own, payee, payee_posting)
