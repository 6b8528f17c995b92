"""The expiry job: every hold whose time has come is expired, its money released, one transaction
per batch.

Safe to run concurrently with itself and with captures and releases: a hold changes from HELD only
inside a transaction that also moves its money, so each hold's money moves once. A hold that cannot
be expired (its wallet is missing or holds less than it should) is left HELD, logged and reported
as skipped; a batch that keeps failing is reported as failed. Neither is tried again in the run.
Each batch writes an operation record with its counts, so a batch whose commit's outcome was
unknown reports, when retried, what it did.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.errors import PyMongoError

from . import commands, documents, queries
from .models import EntryType, ExpiryReport
from .postings import Details, Posting, post
from .queries import Database
from .transactions import RetryTransaction

logger = logging.getLogger("wallet_service")

OPERATION = "expire_reservations"


@dataclass(slots=True)
class Batch:
    """One expiry transaction's work, shared by its attempts."""

    operation_id: str
    due: list[ObjectId]
    cutoff: datetime
    attempts: int = 0


def expire_reservations(db: Database, command: commands.Expiry, time_limit: float) -> ExpiryReport:
    """Expire every due hold, a batch at a time; no batch starts after `time_limit` seconds."""
    cutoff = db.clock() if command.cutoff is None else command.cutoff
    stop_at = time.monotonic() + time_limit
    expired = 0
    passed_over: list[ObjectId] = []
    skipped: list[str] = []
    failed: list[str] = []
    while time.monotonic() < stop_at:
        due = queries.due_reservation_ids(db, cutoff, passed_over, command.batch_size)
        if not due:
            break
        batch = Batch(f"expiry:{uuid.uuid4().hex}", due, cutoff)
        try:
            count, unexpirable = db.runner.run(lambda session, batch=batch: expire_batch(db, session, batch))
        except (PyMongoError, RetryTransaction):
            logger.exception("expiry batch of %d holds failed; they stay HELD until the next run", len(due))
            failed.extend(str(reservation_id) for reservation_id in due)
            passed_over.extend(due)
            continue
        expired += count
        skipped.extend(str(reservation_id) for reservation_id in unexpirable)
        passed_over.extend(unexpirable)
    return ExpiryReport(
        expired=expired,
        skipped=len(skipped),
        failed=len(failed),
        skipped_reservation_ids=tuple(skipped),
        failed_reservation_ids=tuple(failed),
    )


def expire_batch(db: Database, session: ClientSession, batch: Batch) -> tuple[int, list[ObjectId]]:
    """Expire one batch; returns (holds expired, holds that cannot be expired)."""
    if batch.attempts > 0:
        # A retry after a commit whose outcome was unknown: if it did commit, report what it did.
        record = queries.find_record(db, session, batch.operation_id)
        if record is not None:
            return record["expired"], record["skippedReservationIds"]
    batch.attempts += 1
    now = db.clock()
    holds = queries.held_reservations(db, session, batch.due, batch.cutoff)
    if not holds:
        return 0, []
    by_wallet: dict[ObjectId, list[dict]] = {}
    for hold in holds:
        by_wallet.setdefault(hold["walletId"], []).append(hold)
    wallets = queries.wallets_by_id(db, session, list(by_wallet))
    unexpirable: list[ObjectId] = []
    releases: list[tuple[dict, list[Posting]]] = []
    for wallet_id, wallet_holds in by_wallet.items():
        wallet = wallets.get(wallet_id)
        total = sum(hold["amount"] for hold in wallet_holds)
        if wallet is None or wallet["held"] < total:
            logger.error(
                "cannot expire holds %s: wallet %s %s",
                [str(hold["_id"]) for hold in wallet_holds],
                wallet_id,
                "is missing" if wallet is None else f"holds {wallet['held']} < {total}",
            )
            unexpirable.extend(hold["_id"] for hold in wallet_holds)
        else:
            releases.append((wallet, [_expire(hold) for hold in wallet_holds]))
    if not releases:
        return 0, unexpirable

    hold_ids = [posting.reservation_id for _, postings in releases for posting in postings]
    if queries.mark_expired(db, session, hold_ids, now) != len(hold_ids):
        raise RetryTransaction("holds changed during expiry")
    # Guarded on the held amount and sequence read: a wallet changed since then fails the batch, which is retried.
    if queries.release_expired(db, session, releases, now) != len(releases):
        raise RetryTransaction("wallets changed during expiry")
    entries = [
        entry
        for wallet, postings in releases
        for entry in documents.journal_entries(
            wallet["_id"], wallet["currency"], post(documents.wallet_state(wallet), postings), batch.operation_id, now
        )
    ]
    record = documents.operation_record(
        OPERATION, batch.operation_id, now, expired=len(hold_ids), skippedReservationIds=unexpirable
    )
    queries.insert_movement(db, session, record, entries)
    return len(hold_ids), unexpirable


def _expire(hold: dict) -> Posting:
    details = Details(hold.get("referenceType"), hold.get("referenceId"), {})
    return Posting(EntryType.EXPIRE, hold["amount"], details, reservation_id=hold["_id"])
